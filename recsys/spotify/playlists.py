"""Per-genre playlists from genre predictions: plan (dry run, the default), then apply.

Idempotent by construction: the plan is the difference between what should be in each
``recsys: <genre>`` playlist and what the playlist holds now, so a second run adds nothing.
recsys records what it added (a local state JSON written atomically after every change, and a
marker in the playlist description to find the playlist again), and only ever removes tracks it
added itself that the model no longer puts in that genre; tracks a user put there are never
touched, and a track recsys added that the user removed is not added back.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from ..errors import ExternalServiceError, InputError
from ..genres.taxonomy import PARENT_GENRES
from ..io import read_json, write_json
from .client import SpotifyClient, SpotifyHTTPError

log = logging.getLogger(__name__)

ADD_BATCH = 100  # POST /playlists/{id}/items takes at most 100 URIs
MARKER = "[recsys:{genre}]"
STATE_VERSION = 1


def playlist_name(genre: str, prefix: str = "recsys: ") -> str:
    """Name of the playlist recsys keeps for ``genre``."""
    return f"{prefix}{genre}"


def description(genre: str) -> str:
    """Playlist description; ends with a marker that lets recsys recognise its own playlists."""
    return (f"Liked songs sorted into {genre} by recsys' genre model. Tracks you add are kept. "
            + MARKER.format(genre=genre))


@dataclass
class GenrePlan:
    """What applying would do to one genre's playlist."""

    genre: str
    name: str
    playlist_id: str | None  # None: the playlist will be created
    wanted: int  # liked songs predicted as this genre
    to_add: list[str] = field(default_factory=list)
    to_remove: list[str] = field(default_factory=list)  # added by recsys earlier, no longer predicted
    present: int = 0  # wanted tracks already in the playlist
    user_removed: int = 0  # recsys added them, the user took them out: left out
    foreign: int = 0  # tracks in the playlist recsys did not add: never touched

    @property
    def action(self) -> str:
        """``create``, ``update`` or ``unchanged``."""
        if self.playlist_id is None:
            return "create"
        return "update" if (self.to_add or self.to_remove) else "unchanged"


@dataclass
class Plan:
    """Changes applying would make to one user's genre playlists (shown before anything is written)."""

    user_id: str
    genres: list[GenrePlan]
    unplaced: dict[str, int]  # predicted genre not chosen -> count

    @property
    def changes(self) -> int:
        """Number of track additions, removals and playlist creations."""
        return sum(len(g.to_add) + len(g.to_remove) + (g.playlist_id is None) for g in self.genres)

    def lines(self) -> list[str]:
        """Human-readable plan, one line per genre playlist plus totals."""
        out = [f"plan for Spotify user {self.user_id}:"]
        for g in self.genres:
            out.append(f"  {g.name!r}: {g.action}; {g.wanted} predicted, {g.present} already there, "
                       f"+{len(g.to_add)} to add, -{len(g.to_remove)} to remove (added by recsys earlier)"
                       + (f", {g.user_removed} you removed (left out)" if g.user_removed else "")
                       + (f", {g.foreign} of yours kept" if g.foreign else ""))
        if self.unplaced:
            rest = ", ".join(f"{k} {v}" for k, v in sorted(self.unplaced.items(), key=lambda kv: -kv[1]))
            out.append(f"  not placed (genre not chosen): {rest}")
        out.append(f"  total changes: {self.changes}")
        return out


# ---- local state ---------------------------------------------------------------------------------
class PlaylistState:
    """What recsys created and added, per Spotify user and genre, in one JSON file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        data: Any = {"version": STATE_VERSION, "users": {}}
        if self.path.exists():
            data = read_json(self.path, what="recsys playlist state")
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise InputError(f"{self.path}: unrecognised playlist state file "
                                 "(move it away to start over)")
        self.data = data

    def genre(self, user: str, genre: str) -> dict:
        """Mutable record (playlist id, tracks recsys added) of one user's genre, created if absent."""
        return self.data["users"].setdefault(user, {}).setdefault(genre, {"playlist_id": None, "added": []})

    def save(self) -> None:
        """Write the state file atomically."""
        write_json(self.path, self.data)


# ---- reading Spotify -----------------------------------------------------------------------------
def _all_pages(client: SpotifyClient, what: str, fetch: Any, limit: int) -> list[Any]:
    """Every item of a paged endpoint, by offset (not the ``next`` URL, which names the real API
    host even when recsys talks to a proxy or a test server)."""
    items: list[Any] = []
    offset = 0
    while True:
        page = client.call(f"{what} at offset {offset}", fetch, limit=limit, offset=offset)
        batch = page.get("items") if isinstance(page, dict) else None
        if not isinstance(batch, list):
            raise ExternalServiceError(f"{what}: malformed page from Spotify (no items list)")
        items.extend(batch)
        if not page.get("next") or not batch:
            return items
        offset += len(batch)


def remembered_tracks(client, pid: str | None, *, what: str) -> tuple[str | None, list[str]]:
    """(playlist id, its track ids) of a playlist recsys made earlier; (None, []) when there is none or
    it was deleted on Spotify (then it is created again)."""
    if not pid:
        return None, []
    try:
        return pid, playlist_track_ids(client, pid)
    except SpotifyHTTPError as exc:
        if exc.status != 404:
            raise
        log.warning("playlist %s for %s is gone; it will be created again", pid, what)
        return None, []


def playlist_track_ids(client: SpotifyClient, pid: str) -> list[str]:
    """Track ids currently in a playlist (all pages; null/local items ignored)."""

    def fetch(*, limit: int, offset: int) -> Any:
        return client.sp.playlist_items(pid, limit=limit, offset=offset, additional_types=("track",))

    ids = []
    for it in _all_pages(client, f"playlist {pid} items", fetch, 100):
        if not isinstance(it, dict):
            continue
        t = it.get("item") if it.get("item") is not None else it.get("track")
        if isinstance(t, dict) and isinstance(t.get("id"), str):
            ids.append(t["id"])
    return ids


def find_marked_playlists(client: SpotifyClient, user_id: str) -> dict[str, str]:
    """genre -> playlist id for the user's playlists whose description carries the recsys marker."""
    found: dict[str, str] = {}
    for p in _all_pages(client, "your playlists", client.sp.current_user_playlists, 50):
        if not isinstance(p, dict) or (p.get("owner") or {}).get("id") not in (None, user_id):
            continue
        desc = p.get("description") or ""
        for genre in PARENT_GENRES:
            if MARKER.format(genre=genre) in desc and genre not in found and p.get("id"):
                found[genre] = p["id"]
    return found


# ---- planning and applying -----------------------------------------------------------------------
def _predicted_by_genre(predictions: pd.DataFrame) -> dict[str, list[str]]:
    if not {"track_id", "predicted_genre"} <= set(predictions.columns):
        raise InputError("predictions need columns track_id and predicted_genre")
    out: dict[str, list[str]] = {}
    for tid, g in zip(predictions["track_id"].astype(str), predictions["predicted_genre"]):
        if g is None or (isinstance(g, float) and pd.isna(g)) or g is pd.NA:
            continue
        lst = out.setdefault(str(g), [])
        if tid not in lst:
            lst.append(tid)
    return out


def plan_playlists(client: SpotifyClient, predictions: pd.DataFrame, genres: Sequence[str], *,
                   state: PlaylistState, prefix: str = "recsys: ") -> Plan:
    """Compare predictions with the current playlists; no writes."""
    unknown = [g for g in genres if g not in PARENT_GENRES]
    if unknown:
        raise InputError(f"unknown genre(s) {', '.join(unknown)} (choose from {', '.join(PARENT_GENRES)})")
    user = client.current_user_id()
    by_genre = _predicted_by_genre(predictions)
    marked: dict[str, str] | None = None
    plans = []
    for genre in genres:
        st = state.genre(user, genre)
        pid, current = remembered_tracks(client, st.get("playlist_id"), what=genre)
        if not pid:
            if marked is None:
                marked = find_marked_playlists(client, user)
            pid = marked.get(genre)
            if pid:
                current = playlist_track_ids(client, pid)
        wanted = by_genre.get(genre, [])
        added = set(st.get("added") or []) if st.get("playlist_id") == pid else set()
        cur = set(current)
        plan = GenrePlan(genre=genre, name=playlist_name(genre, prefix), playlist_id=pid or None,
                         wanted=len(wanted))
        wanted_set = set(wanted)
        for t in wanted:
            if t in cur:
                plan.present += 1
            elif t in added:
                plan.user_removed += 1
            else:
                plan.to_add.append(t)
        plan.to_remove = [t for t in dict.fromkeys(current) if t in added and t not in wanted_set]
        plan.foreign = len({t for t in cur if t not in added})
        plans.append(plan)
    unplaced = {g: len(v) for g, v in by_genre.items() if g not in genres}
    return Plan(user_id=user, genres=plans, unplaced=unplaced)


def apply_plan(client: SpotifyClient, plan: Plan, *, state: PlaylistState) -> dict[str, int]:
    """Execute a plan; state is saved after every change so an interruption loses nothing."""
    sp = client.sp
    done = {"created": 0, "added": 0, "removed": 0}
    for g in plan.genres:
        st = state.genre(plan.user_id, g.genre)
        if g.playlist_id is None:
            created = client.call(f"create playlist {g.name!r}", sp.current_user_playlist_create, g.name,
                                  public=False, description=description(g.genre))
            if not isinstance(created, dict) or not created.get("id"):
                raise ExternalServiceError(f"create playlist {g.name!r}: Spotify returned no playlist id")
            g.playlist_id = created["id"]
            st.update(playlist_id=g.playlist_id, added=[])
            state.save()
            done["created"] += 1
        elif st.get("playlist_id") != g.playlist_id:
            st.update(playlist_id=g.playlist_id, added=[])  # found by marker: we know nothing we added
            state.save()
        added: list[str] = list(st.get("added") or [])
        for i in range(0, len(g.to_add), ADD_BATCH):
            chunk = g.to_add[i:i + ADD_BATCH]
            client.call(f"add {len(chunk)} tracks to {g.name!r}", sp.playlist_add_items, g.playlist_id,
                        [f"spotify:track:{t}" for t in chunk])
            added.extend(t for t in chunk if t not in added)
            st["added"] = added
            state.save()
            done["added"] += len(chunk)
        for i in range(0, len(g.to_remove), ADD_BATCH):
            chunk = g.to_remove[i:i + ADD_BATCH]
            client.call(f"remove {len(chunk)} tracks from {g.name!r}",
                        sp.playlist_remove_all_occurrences_of_items,
                        g.playlist_id, [f"spotify:track:{t}" for t in chunk])
            gone = set(chunk)
            added = [t for t in added if t not in gone]
            st["added"] = added
            state.save()
            done["removed"] += len(chunk)
    return done


def predictions_from_model(model_dir: str | Path, rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Predict a parent genre per track with a saved tabular genre model.

    Tracks without any audio statistic cannot be predicted and are left out; returns
    ``(predictions, n_without_stats)``.
    """
    from ..schema import STATS
    from ..errors import SchemaError
    from ..genres.tabular import GenreClassifier, tabular_features

    feature_stats = [s for s in STATS if s != "duration_ms"]
    per_track = rows.drop_duplicates("track_id")
    has = per_track[feature_stats].notna().any(axis=1)
    usable = per_track[has]
    if usable.empty:
        return pd.DataFrame({"track_id": [], "predicted_genre": []}), int((~has).sum())
    clf = GenreClassifier.load(model_dir)
    try:
        pred = clf.predict(tabular_features(usable))
    except SchemaError as exc:
        raise SchemaError(f"cannot predict genres for liked songs: {exc}; supply the statistics "
                          "with --stats FILE") from None
    return pd.DataFrame({"track_id": usable["track_id"].astype(str).to_numpy(),
                         "predicted_genre": [str(p) for p in pred]}), int((~has).sum())


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A CSV/Parquet of ``track_id,predicted_genre`` (e.g. from ``recsys genres predict``)."""
    from ..io import read_table

    df = read_table(path)
    if not {"track_id", "predicted_genre"} <= set(df.columns):
        raise InputError(f"{path}: predictions need columns track_id and predicted_genre")
    df = df[["track_id", "predicted_genre"]].copy()
    df["track_id"] = df["track_id"].astype(str).str.strip()
    return df


def parse_genres(text: str | None, available: Iterable[str] = ()) -> list[str]:
    """``pop,rock`` -> ['pop', 'rock']; None -> every genre that received a prediction."""
    if not text:
        return [g for g in PARENT_GENRES if g in set(available)]
    out = [g.strip().lower() for g in text.split(",") if g.strip()]
    return list(dict.fromkeys(out))
