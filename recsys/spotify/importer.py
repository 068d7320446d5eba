"""Import playlists and liked songs from the Spotify Web API into catalogue rows.

One row per (track, source) like the TidyTuesday table, so :func:`recsys.catalog.load_catalog`
merges a track listed in several playlists into one row with all its labels. Pages are followed
to the end (100 playlist items, 50 saved tracks a request); local files, unavailable tracks, null
and malformed items are skipped and counted. Each finished page is checkpointed (atomically) in
``<out>.partial/``, so a killed import resumes where it stopped.

Statistics: the audio-features endpoint is asked only while it answers; the first 403 (apps
registered after 2024-11-27 have no access) is reported once and the import continues with
statistics from a user-supplied table (``stats=``) or leaves them missing (NaN) for estimation
from local audio.
"""
from __future__ import annotations

import logging
import math
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from ..schema import STATS
from ..catalog import fill_stats, read_stats
from ..errors import ExternalServiceError, InputError
from ..genres.taxonomy import Taxonomy
from ..io import read_json, sha256_json, write_json
from .client import SpotifyClient, SpotifyHTTPError
from .labels import PlaylistSpec, artist_parent, fetch_artist_genres

log = logging.getLogger(__name__)

# read_stats / fill_stats live in recsys.catalog (build-index --stats uses them too)
__all__ = ["Importer", "ImportConfig", "ImportReport", "track_row", "read_stats", "fill_stats",
           "playlist_histories"]

#: Statistics only the audio-features endpoint (or a user's table / local audio) can give.
FEATURE_STATS: tuple[str, ...] = tuple(s for s in STATS if s != "duration_ms")
META_COLUMNS: tuple[str, ...] = (
    "track_id", "track_name", "track_artist", "track_artist_ids", "track_album_name",
    "track_album_release_date", "track_popularity", "playlist_name", "playlist_id", "playlist_genre",
    "label_source", "artist_genres", "artist_parent_genre", "source", "added_at", "track_isrc",
    "track_album_id",
)
LIKED_NAME, LIKED_ID = "Liked Songs", "me:liked"
SKIP_REASONS = ("null", "local", "unavailable", "not_track", "malformed")
FEATURES_403 = ("Spotify refused audio-features ({status}): apps registered after 2024-11-27 (and apps in "
                "development mode) have no access. Statistics come from --stats FILE where given, "
                "otherwise they are left missing (estimate them from local audio).")


@dataclass
class ImportConfig:
    """Paging and batching sizes (the Web API's maxima) and which enrichments to ask for."""

    page_size: int = 100  # playlist items per request (API max 100)
    liked_page_size: int = 50  # saved tracks per request (API max 50)
    lookup_batch: int = 50  # ids per GET /tracks and GET /artists (API max 50)
    features_batch: int = 100  # ids per GET /audio-features (API max 100)
    market: str | None = None  # ISO country or "from_token"; enables is_playable
    audio_features: bool = True
    artist_genres: bool = True


@dataclass
class ImportReport:
    """What happened: per-source counts, skips by reason, where statistics came from, notes."""

    sources: list[dict] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    rows: int = 0
    tracks: int = 0
    completed_by_lookup: int = 0
    audio_features: str = "off"  # used | forbidden | off | error
    features_found: int = 0
    stats_from_file: int = 0
    missing_stats: int = 0  # tracks with none of the 11 feature statistics
    artist_genres: str = "off"  # used | empty | off | error
    artists: int = 0
    resumed_pages: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        """Record a message once (the CLI prints notes; the log gets it once at info level)."""
        if text not in self.notes:
            self.notes.append(text)
            log.info("%s", text)


# ---- item -> row -------------------------------------------------------------------------------
def _num(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def track_row(item: Any) -> tuple[dict | None, str | None]:
    """A catalogue row from a playlist/saved-track item, or ``(None, skip_reason)``.

    Accepts the February 2026 shape (``item``) and the older one (``track``).
    """
    if item is None:
        return None, "null"
    if not isinstance(item, dict):
        return None, "malformed"
    if "item" in item or "track" in item:
        t = item.get("item") if item.get("item") is not None else item.get("track")
    else:
        return None, "malformed"
    if t is None:
        return None, "null"
    if not isinstance(t, dict):
        return None, "malformed"
    if item.get("is_local") is True or t.get("is_local") is True:
        return None, "local"
    if t.get("type", "track") != "track":
        return None, "not_track"
    tid = t.get("id")
    if not isinstance(tid, str) or not tid.strip() or t.get("is_playable") is False:
        return None, "unavailable"
    artists = t.get("artists") if isinstance(t.get("artists"), list) else []
    artists = [a for a in artists if isinstance(a, dict)]
    names = [n for n in (_text(a.get("name")) for a in artists) if n]
    ids = [i for i in (_text(a.get("id")) for a in artists) if i]
    album = t.get("album") if isinstance(t.get("album"), dict) else {}
    row = {
        "track_id": tid.strip(),
        "track_name": _text(t.get("name")),
        "track_artist": ", ".join(names) or None,
        "track_artist_ids": ";".join(ids) or None,
        "track_album_name": _text(album.get("name")),
        "track_album_id": _text(album.get("id")),
        "track_album_release_date": _text(album.get("release_date")),
        "track_popularity": _num(t.get("popularity")),
        "duration_ms": _num(t.get("duration_ms")),
        "added_at": _text(item.get("added_at")),
        "track_isrc": _text((t.get("external_ids") or {}).get("isrc"))
        if isinstance(t.get("external_ids"), dict) else None,
    }
    return row, None


def _incomplete(row: dict) -> bool:
    return (row["track_name"] is None or row["track_artist"] is None or row["track_album_name"] is None
            or math.isnan(row["duration_ms"]))


# ---- checkpoint ----------------------------------------------------------------------------------
class Checkpoint:
    """``<dir>/state.json`` plus one JSON file per finished page; every write is atomic.

    ``key`` identifies the request (sources and page sizes); a checkpoint for another request
    is discarded rather than mixed in.
    """

    VERSION = 1

    def __init__(self, directory: str | Path | None, key: str) -> None:
        self.dir = Path(directory) if directory is not None else None
        self.key = key
        self.state: dict[str, Any] = {"version": self.VERSION, "key": key, "sources": {}}
        self._caches: dict[str, dict] = {}
        self.resumed = False
        if self.dir is not None and self.dir.exists():
            old = None
            if (self.dir / "state.json").exists():
                try:
                    old = read_json(self.dir / "state.json", what="import checkpoint")
                except InputError as exc:
                    log.warning("%s; starting over", exc)
            if isinstance(old, dict) and old.get("version") == self.VERSION and old.get("key") == key:
                self.state = old
                self.resumed = True
            else:  # another request's (or a broken) checkpoint: never mix it in
                shutil.rmtree(self.dir, ignore_errors=True)

    def source(self, name: str) -> dict:
        """Progress record of one source (next offset, done flag, finished pages), created on first use."""
        return self.state["sources"].setdefault(name, {"next_offset": 0, "done": False, "pages": [],
                                                        "total": None, "meta": {}})

    def _page_path(self, name: str, offset: int) -> Path:
        assert self.dir is not None
        safe = "".join(c if c.isalnum() else "_" for c in name)
        return self.dir / "pages" / f"{safe}-{offset:08d}.json"

    def save_page(self, name: str, offset: int, rows: list[dict], skipped: dict, *, next_offset: int,
                  done: bool, total: int | None) -> None:
        """Store one finished page of ``name`` and advance its offset, so a rerun resumes after it."""
        src = self.source(name)
        if self.dir is not None:
            write_json(self._page_path(name, offset), {"rows": rows, "skipped": skipped})
        else:
            src.setdefault("_mem", {})[offset] = {"rows": rows, "skipped": skipped}
        src["pages"].append(offset)
        src.update(next_offset=next_offset, done=done, total=total)
        self.flush()

    def pages(self, name: str) -> list[dict]:
        """All finished pages of ``name`` in fetch order (raises if a page file is corrupted)."""
        src = self.source(name)
        if self.dir is None:
            return [src["_mem"][o] for o in src["pages"]]
        out = []
        for o in src["pages"]:
            data = read_json(self._page_path(name, o), what="import checkpoint page")
            if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
                raise InputError(f"{self._page_path(name, o)}: checkpoint page is corrupted; "
                                 "rerun with --restart")
            out.append(data)
        return out

    def cache(self, name: str) -> dict:
        """Merged lookups cached so far (artist genres, audio features) for this request."""
        if name not in self._caches:
            merged: dict = {}
            if self.dir is not None:
                for f in sorted((self.dir / "cache").glob(f"{name}-*.json")):
                    data = read_json(f, what="import checkpoint cache")
                    if isinstance(data, dict):
                        merged.update(data)
            self._caches[name] = merged
        return self._caches[name]

    def add_cache(self, name: str, entries: dict) -> None:
        """Append one batch of lookups as its own small file (no rewrite of what is there)."""
        cache = self.cache(name)
        cache.update(entries)
        if self.dir is not None and entries:
            n = len(list((self.dir / "cache").glob(f"{name}-*.json"))) if (self.dir / "cache").exists() else 0
            write_json(self.dir / "cache" / f"{name}-{n:06d}.json", entries)

    def flush(self) -> None:
        """Write ``state.json`` atomically (in-memory pages are left out)."""
        if self.dir is not None:
            state = {**self.state, "sources": {k: {kk: vv for kk, vv in v.items() if kk != "_mem"}
                                               for k, v in self.state["sources"].items()}}
            write_json(self.dir / "state.json", state)

    def clear(self) -> None:
        """Delete the checkpoint directory (after a completed import)."""
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---- the importer --------------------------------------------------------------------------------
def _bar(progress: bool, total: int | None, desc: str, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="item", disable=not progress, leave=False)


class Importer:
    """Turns playlists and liked songs into catalogue rows through a :class:`SpotifyClient`."""

    def __init__(self, client: SpotifyClient, *, config: ImportConfig | None = None,
                 taxonomy: Taxonomy | None = None, checkpoint: str | Path | None = None,
                 progress: bool = False) -> None:
        self.client = client
        self.config = config or ImportConfig()
        self.taxonomy = taxonomy
        self.checkpoint_dir = checkpoint
        self.progress = progress

    # -- paging ----------------------------------------------------------------------------------
    def _pages(self, ck: Checkpoint, key: str, name: str, fetch: Callable[[int], Any], limit: int,
               report: ImportReport) -> tuple[list[dict], Counter]:
        src = ck.source(key)
        if src["pages"]:
            report.resumed_pages += len(src["pages"])
        offset = int(src["next_offset"])
        bar = _bar(self.progress, src.get("total"), name[:30], initial=offset)
        try:
            while not src["done"]:
                page = self.client.call(f"{name}: items at offset {offset}", fetch, offset)
                items = page.get("items") if isinstance(page, dict) else None
                if not isinstance(items, list):
                    raise ExternalServiceError(f"{name}: Spotify returned a malformed page at offset "
                                               f"{offset} (no items list); rerun to resume")
                rows, skipped = [], Counter()
                for it in items:
                    row, reason = track_row(it)
                    if row is None:
                        skipped[reason] += 1
                    else:
                        rows.append(row)
                total = page.get("total") if isinstance(page.get("total"), int) else None
                if bar.total is None and total is not None:
                    bar.total = total
                    bar.refresh()
                nxt = offset + len(items)
                done = not page.get("next") or not items
                ck.save_page(key, offset, rows, dict(skipped), next_offset=nxt, done=done, total=total)
                bar.update(len(items))
                offset = nxt
        finally:
            bar.close()
        rows, skipped = [], Counter()
        for p in ck.pages(key):
            rows.extend(p["rows"])
            skipped.update(p.get("skipped") or {})
        return rows, skipped

    def _playlist(self, ck: Checkpoint, spec: PlaylistSpec, report: ImportReport) -> list[dict]:
        sp, key = self.client.sp, f"playlist:{spec.playlist_id}"
        src = ck.source(key)
        if not src["meta"]:
            try:
                meta = self.client.call(f"playlist {spec.playlist_id}", sp.playlist, spec.playlist_id,
                                        fields="id,name,owner(id)", market=self.config.market)
            except SpotifyHTTPError as exc:
                if exc.status in (403, 404):
                    report.sources.append({"source": spec.ref, "name": None, "rows": 0,
                                           "status": f"skipped ({exc.status})"})
                    report.note(f"playlist {spec.ref}: Spotify answered {exc.status}; skipped "
                                "(Spotify-owned, editorial and algorithmic playlists are hidden from new "
                                "apps, and development-mode apps can read only playlists the user owns or "
                                "collaborates on)")
                    return []
                raise
            name = _text(meta.get("name")) if isinstance(meta, dict) else None
            src["meta"] = {"name": name or spec.playlist_id}
            ck.flush()
        name = src["meta"]["name"]

        def fetch(offset: int) -> Any:
            return sp.playlist_items(spec.playlist_id, limit=self.config.page_size, offset=offset,
                                     market=self.config.market, additional_types=("track",))

        try:
            rows, skipped = self._pages(ck, key, f"playlist {name}", fetch, self.config.page_size, report)
        except SpotifyHTTPError as exc:
            if exc.status in (403, 404) and not src["pages"]:
                report.sources.append({"source": spec.ref, "name": name, "rows": 0,
                                       "status": f"skipped ({exc.status})"})
                report.note(f"playlist {name}: items refused ({exc.status}); skipped")
                return []
            raise
        for r in rows:
            r.update(playlist_name=name, playlist_id=spec.playlist_id, playlist_genre=spec.genre,
                     label_source="playlist" if spec.genre else None, source="playlist")
        report.skipped.update(skipped)
        report.sources.append({"source": spec.ref, "name": name, "rows": len(rows), "status": "ok",
                               "skipped": sum(skipped.values())})
        return rows

    def _liked(self, ck: Checkpoint, report: ImportReport) -> list[dict]:
        if self.client.kind != "user":
            raise InputError("liked songs need user authorisation: run `recsys spotify login` first")
        sp = self.client.sp

        def fetch(offset: int) -> Any:
            return sp.current_user_saved_tracks(limit=self.config.liked_page_size, offset=offset,
                                                market=self.config.market)

        rows, skipped = self._pages(ck, "liked", LIKED_NAME, fetch, self.config.liked_page_size, report)
        for r in rows:
            r.update(playlist_name=LIKED_NAME, playlist_id=LIKED_ID, playlist_genre=None, label_source=None,
                     source="liked")
        report.skipped.update(skipped)
        report.sources.append({"source": "liked", "name": LIKED_NAME, "rows": len(rows), "status": "ok",
                               "skipped": sum(skipped.values())})
        return rows

    # -- enrichment ------------------------------------------------------------------------------
    def _complete(self, rows: list[dict], report: ImportReport) -> None:
        """Fill rows whose item lacked name/artists/album/duration from GET /tracks (50 ids a call)."""
        need = list(dict.fromkeys(r["track_id"] for r in rows if _incomplete(r)))
        if not need:
            return
        found: dict[str, dict] = {}
        sp, n = self.client.sp, self.config.lookup_batch
        for i in range(0, len(need), n):
            chunk = need[i:i + n]
            try:
                res = self.client.call(f"tracks lookup ({len(chunk)} ids)", sp.tracks, chunk,
                                       market=self.config.market)
            except SpotifyHTTPError as exc:
                if exc.status in (403, 404):
                    report.note(f"track lookups refused ({exc.status}); {len(need)} incomplete track(s) keep "
                                "the fields their playlist item had")
                    return
                raise
            for t in (res or {}).get("tracks") or []:
                row, _ = track_row({"track": t})
                if row is not None:
                    found[row["track_id"]] = row
        for r in rows:
            full = found.get(r["track_id"])
            if full is None:
                continue
            filled = False
            for k in ("track_name", "track_artist", "track_artist_ids", "track_album_name",
                      "track_album_release_date", "track_isrc", "track_album_id"):
                if r.get(k) is None and full.get(k) is not None:
                    r[k], filled = full[k], True
            for k in ("track_popularity", "duration_ms"):
                if math.isnan(r[k]) and not math.isnan(full[k]):
                    r[k], filled = full[k], True
            report.completed_by_lookup += filled

    def _artist_genres(self, ck: Checkpoint, rows: list[dict], report: ImportReport) -> None:
        taxonomy = self.taxonomy or Taxonomy.load()
        ids = [a for r in rows for a in (r.get("track_artist_ids") or "").split(";") if a]
        sp = self.client.sp
        cache = ck.cache("artist_genres")
        bar = _bar(self.progress, len(set(ids) - set(cache)), "artist genres")

        def lookup(chunk: list[str]) -> list:
            res = self.client.call(f"artists lookup ({len(chunk)} ids)", sp.artists, chunk)
            return (res or {}).get("artists") or [] if isinstance(res, dict) else []

        def single(a: str) -> Any:
            return self.client.call(f"artist {a}", sp.artist, a)

        def save(batch: dict) -> None:
            ck.add_cache("artist_genres", batch)

        try:
            genres, counts = fetch_artist_genres(ids, lookup, single=single, batch=self.config.lookup_batch,
                                                 known=dict(cache), on_batch=save, progress=bar)
        except ExternalServiceError as exc:
            report.artist_genres = "error"
            report.note(f"artist genres unavailable ({exc}); rows keep playlist labels only")
            return
        finally:
            bar.close()
        if counts["fallback_single"]:
            report.note("the batch artists endpoint was refused; artists were looked up one at a time")
        report.artists = len(genres)
        any_genre = False
        for r in rows:
            a_ids = [a for a in (r.get("track_artist_ids") or "").split(";") if a]
            strings, parent = artist_parent(a_ids, genres, taxonomy)
            any_genre |= bool(strings)
            r["artist_genres"] = "; ".join(strings) or None
            r["artist_parent_genre"] = parent
            if r.get("playlist_genre") is None and parent is not None:
                r["playlist_genre"], r["label_source"] = parent, "artist"
        report.artist_genres = "used" if any_genre else "empty"
        if not any_genre and genres:
            report.note("Spotify returned no artist genres (the field is withheld from development-mode apps "
                        "since February 2026); label tracks with --playlist URL=genre instead")

    def _audio_features(self, ck: Checkpoint, ids: list[str], report: ImportReport) -> dict[str, dict]:
        cache: dict[str, Any] = ck.cache("audio_features")
        sp, n = self.client.sp, self.config.features_batch
        todo = [t for t in ids if t not in cache]
        report.audio_features = "used"
        bar = _bar(self.progress, len(todo), "audio features")
        try:
            for i in range(0, len(todo), n):
                chunk = todo[i:i + n]
                try:
                    res = self.client.call(f"audio-features ({len(chunk)} ids)", sp.audio_features, chunk)
                except SpotifyHTTPError as exc:
                    if exc.status in (403, 404, 410):
                        report.audio_features = "forbidden"
                        report.note(FEATURES_403.format(status=exc.status))
                        break
                    raise
                except (TypeError, AttributeError, KeyError):  # spotipy choking on an empty/odd body
                    res = None
                if not isinstance(res, list):
                    report.audio_features = "error"
                    report.note("audio-features returned a malformed answer; statistics left missing")
                    break
                by_id = {f.get("id"): f for f in res if isinstance(f, dict)}
                ck.add_cache("audio_features", {t: ({s: _num(by_id[t].get(s)) for s in FEATURE_STATS}
                                                    if by_id.get(t) else None) for t in chunk})
                bar.update(len(chunk))
        finally:
            bar.close()
        out = {t: v for t, v in cache.items() if v}
        report.features_found = sum(1 for t in ids if t in out)
        return out

    # -- main entry ------------------------------------------------------------------------------
    def run(self, playlists: Sequence[PlaylistSpec] = (), *, liked: bool = False,
            stats: pd.DataFrame | None = None) -> tuple[pd.DataFrame, ImportReport]:
        """Import the given playlists (and liked songs); returns ``(rows, report)``.

        The checkpoint directory is removed only after success; on an exception it stays for a
        resume with the same arguments.
        """
        if not playlists and not liked:
            raise InputError("nothing to import: give at least one playlist or liked songs")
        cfg = self.config
        key = sha256_json({"playlists": [(p.playlist_id, p.genre) for p in playlists], "liked": liked,
                           "page": cfg.page_size, "liked_page": cfg.liked_page_size, "market": cfg.market})
        ck = Checkpoint(self.checkpoint_dir, key)
        report = ImportReport()
        rows: list[dict] = []
        seen: set[str] = set()
        for spec in playlists:
            if spec.playlist_id in seen:
                continue
            seen.add(spec.playlist_id)
            rows.extend(self._playlist(ck, spec, report))
        if liked:
            rows.extend(self._liked(ck, report))
        if ck.resumed and report.resumed_pages:
            report.note(f"resumed an interrupted import: {report.resumed_pages} page(s) "
                        "taken from the checkpoint")
        self._complete(rows, report)
        if cfg.artist_genres and rows:
            self._artist_genres(ck, rows, report)
        track_ids = list(dict.fromkeys(r["track_id"] for r in rows))
        features: dict[str, dict] = {}
        if cfg.audio_features and track_ids:
            features = self._audio_features(ck, track_ids, report)
        df = self._frame(rows, features)
        if stats is not None and len(df):
            df, report.stats_from_file = fill_stats(df, stats)
        report.rows, report.tracks = len(df), len(track_ids)
        if len(df):
            per_track = df.drop_duplicates("track_id")
            report.missing_stats = int(per_track[list(FEATURE_STATS)].isna().all(axis=1).sum())
        ck.clear()
        return df, report

    @staticmethod
    def _frame(rows: list[dict], features: dict[str, dict]) -> pd.DataFrame:
        df = pd.DataFrame(rows, columns=[*META_COLUMNS, "duration_ms"])
        for s in FEATURE_STATS:
            df[s] = [(features.get(t) or {}).get(s, math.nan) for t in df["track_id"]]
        df = df[[*META_COLUMNS, *STATS]]
        for c in META_COLUMNS:
            if c != "track_popularity":
                df[c] = df[c].astype("string")
        for c in ("track_popularity", *STATS):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
        return df


# ---- playlists as listening histories ------------------------------------------------------------
HISTORY_COLUMNS = ("user_id", "position", "track_id", "added_at", "playlist_name", "source")


def playlist_histories(rows: pd.DataFrame) -> pd.DataFrame:
    """One history per playlist (user_id = playlist id, position = playlist order, added_at kept).

    Liked songs are one more history (``me:liked``, oldest like first); ``build-index --histories`` reads it.
    """
    if rows is None or len(rows) == 0:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "position" else "string")
                             for c in HISTORY_COLUMNS})
    h = rows[["playlist_id", "track_id", "added_at", "playlist_name", "source"]].copy()
    liked = (h["source"] == "liked").fillna(False).to_numpy(dtype=bool)
    # the saved-tracks endpoint lists the newest like first: reversed, the last plays are the latest likes
    h = pd.concat([h[~liked], h[liked].iloc[::-1]], ignore_index=True)
    h = h.rename(columns={"playlist_id": "user_id"})
    h["position"] = h.groupby("user_id", sort=False).cumcount().astype("int64")
    out = h[list(HISTORY_COLUMNS)].copy()
    for c in ("user_id", "track_id", "added_at", "playlist_name", "source"):
        out[c] = out[c].astype("string")
    return out
