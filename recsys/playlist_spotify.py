"""Write a playlist made by recsys to Spotify as a new playlist: a plan first (dry run), then apply.

Reuses the genre write-back's machinery (``recsys.spotify.playlists``): the client with retries, the
paged reads, batches of ``ADD_BATCH`` and the local state file. Idempotent: the playlist recsys created
for a name is found again through the state file, and only tracks not already in it are added.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ExternalServiceError, InputError

MARKER = "[recsys:playlist]"


@dataclass
class SavePlan:
    """What applying would do: create the playlist (``playlist_id`` None) or add the missing tracks."""

    user_id: str
    name: str
    playlist_id: str | None
    to_add: list[str] = field(default_factory=list)
    present: int = 0

    def lines(self) -> list[str]:
        what = "create" if self.playlist_id is None else "update"
        return [
            f"plan for Spotify user {self.user_id}: {self.name!r}: {what}; +{len(self.to_add)} to add, "
            f"{self.present} already there"
        ]


def _key(name: str) -> str:
    return f"playlist:{name}"


def read_track_ids(path) -> list[str]:
    """Track ids in play order from a playlist file written by ``recsys playlist --out`` (JSON or CSV)."""
    from pathlib import Path

    from .io import read_json, read_table

    p = Path(path)
    if p.suffix.lower() == ".json":
        data = read_json(p, what="playlist")
        items = data.get("playlist") if isinstance(data, dict) else data
        if not isinstance(items, list) or not all(isinstance(t, dict) and "track_id" in t for t in items):
            raise InputError(f'{p}: expected {{"playlist": [{{"track_id": ...}}, ...]}}')
        ids = [str(t["track_id"]) for t in items]
    else:
        tab = read_table(p)
        if "track_id" not in tab.columns:
            raise InputError(f"{p}: no track_id column")
        ids = tab["track_id"].astype(str).str.strip().tolist()
    if not ids:
        raise InputError(f"{p}: the playlist is empty")
    return list(dict.fromkeys(ids))


def plan_save(client, track_ids: list[str], name: str, *, state) -> SavePlan:
    """Compare the tracks with the playlist recsys made for ``name`` earlier (if any); no writes."""
    from .spotify.playlists import remembered_tracks

    if not name.strip():
        raise InputError("the playlist needs a name")
    user = client.current_user_id()
    st = state.genre(user, _key(name))
    pid, current = remembered_tracks(client, st.get("playlist_id"), what=name)
    cur = set(current)
    return SavePlan(
        user, name, pid or None, [t for t in track_ids if t not in cur], sum(t in cur for t in track_ids)
    )


def apply_save(client, plan: SavePlan, *, state, description: str = "") -> dict[str, int]:
    """Create the playlist when needed and add the tracks in batches; the state is saved after each change."""
    from .spotify.playlists import ADD_BATCH

    sp = client.sp
    st = state.genre(plan.user_id, _key(plan.name))
    done = {"created": 0, "added": 0}
    if plan.playlist_id is None:
        created = client.call(
            f"create playlist {plan.name!r}",
            sp.current_user_playlist_create,
            plan.name,
            public=False,
            description=(description + " " + MARKER).strip(),
        )
        if not isinstance(created, dict) or not created.get("id"):
            raise ExternalServiceError(f"create playlist {plan.name!r}: Spotify returned no playlist id")
        plan.playlist_id = created["id"]
        st.update(playlist_id=plan.playlist_id, added=[])
        state.save()
        done["created"] = 1
    added = list(st.get("added") or [])
    for i in range(0, len(plan.to_add), ADD_BATCH):
        chunk = plan.to_add[i : i + ADD_BATCH]
        client.call(
            f"add {len(chunk)} tracks to {plan.name!r}",
            sp.playlist_add_items,
            plan.playlist_id,
            [f"spotify:track:{t}" for t in chunk],
        )
        added.extend(t for t in chunk if t not in added)
        st["added"] = added
        state.save()
        done["added"] += len(chunk)
    return done
