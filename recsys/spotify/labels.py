"""Genre labels for imported tracks: artist genres mapped to the 13 parents, and playlist labels.

Two sources, kept apart so a user can see where a label came from:
- a playlist chosen to stand for a genre (``--playlist URL=rock``) labels every track in it;
- the artists endpoint's genre strings (batched 50 ids a request), mapped with
  :class:`~recsys.genres.taxonomy.Taxonomy`; a track takes its artists' most frequent parent.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from ..errors import InputError
from ..genres.taxonomy import Taxonomy, primary_label

log = logging.getLogger(__name__)

ARTIST_BATCH = 50
_URL = re.compile(r"^(?:https?://)?open\.spotify\.com/(?:intl-\w+/)?(?:user/[^/]+/)?playlist/([0-9A-Za-z]+)(?:[/?#].*)?$")
_URI = re.compile(r"^spotify:(?:user:[^:]+:)?playlist:([0-9A-Za-z]+)$")
_ID = re.compile(r"^[0-9A-Za-z]{1,64}$")


def playlist_id(ref: str) -> str:
    """The playlist id inside a Spotify URL, URI or bare id; InputError otherwise."""
    ref = ref.strip()
    for rx in (_URL, _URI, _ID):
        m = rx.match(ref)
        if m:
            return m.group(1) if rx is not _ID else ref
    raise InputError(f"not a Spotify playlist URL, URI or id: {ref!r}")


@dataclass(frozen=True)
class PlaylistSpec:
    """A playlist to import and the genre it stands for (None: no playlist label)."""

    ref: str
    playlist_id: str
    genre: str | None = None


def parse_playlist_spec(text: str, *, taxonomy: Taxonomy | None = None) -> PlaylistSpec:
    """Parse ``REF`` or ``REF=genre``. URLs carry ``?si=...`` query strings, so the part after the
    last ``=`` is a label only when the taxonomy maps it to a parent genre."""
    text = text.strip()
    ref, sep, label = text.rpartition("=")
    if sep and label.strip() and "&" not in label:
        taxonomy = taxonomy or Taxonomy.load()
        if taxonomy.parent_of(label) is not None:
            return PlaylistSpec(ref.strip(), playlist_id(ref), label.strip())
        try:
            return PlaylistSpec(text, playlist_id(text))
        except InputError:
            raise InputError(f"{text!r}: genre label {label.strip()!r} maps to none of the 13 parent genres "
                             "(see `recsys genres` taxonomy) and the whole is not a playlist "
                             "reference") from None
    return PlaylistSpec(text, playlist_id(text))


def fetch_artist_genres(artist_ids: Iterable[str], lookup: Callable[[list[str]], list[Any]], *,
                        single: Callable[[str], Any] | None = None, batch: int = ARTIST_BATCH,
                        known: dict[str, list[str]] | None = None,
                        on_batch: Callable[[dict[str, list[str]]], None] | None = None,  # gets each batch
                        progress: Any = None) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Genre strings per artist id, asking ``lookup`` (GET /artists?ids=) ``batch`` ids at a time.

    ``known`` holds results from an earlier (resumed) run and is not asked again. If the batch
    endpoint is refused (403/404: removed for development-mode apps in February 2026), falls
    back to ``single`` per-id lookups when given. Returns ``(genres_by_id, counts)``.
    """
    from .client import SpotifyHTTPError

    out: dict[str, list[str]] = dict(known or {})
    counts = {"requests": 0, "missing": 0, "fallback_single": 0}
    todo = [a for a in dict.fromkeys(a for a in artist_ids if a) if a not in out]
    use_batch = True
    for i in range(0, len(todo), batch):
        chunk = todo[i:i + batch]
        got: list[Any] = []
        if use_batch:
            try:
                counts["requests"] += 1
                got = lookup(chunk) or []
            except SpotifyHTTPError as exc:
                if exc.status not in (403, 404) or single is None:
                    raise
                log.warning("artists batch lookup refused (%s); looking artists up one at a time", exc.status)
                use_batch = False
        if not use_batch:
            got = []
            for a in chunk:
                try:
                    counts["requests"] += 1
                    counts["fallback_single"] += 1
                    got.append(single(a))  # type: ignore[misc]
                except SpotifyHTTPError as exc:
                    if exc.status not in (403, 404):
                        raise
                    got.append(None)
        by_id = {g.get("id"): g for g in got if isinstance(g, dict)}
        batch_out: dict[str, list[str]] = {}
        for a in chunk:
            genres = (by_id.get(a) or {}).get("genres")
            if not isinstance(genres, list):
                counts["missing"] += 1
                genres = []
            batch_out[a] = [str(g) for g in genres if isinstance(g, str) and g.strip()]
        out.update(batch_out)
        if on_batch is not None:
            on_batch(batch_out)
        if progress is not None:
            progress.update(len(chunk))
    return out, counts


def artist_parent(artist_ids: Sequence[str], genres_by_artist: dict[str, list[str]],
                  taxonomy: Taxonomy) -> tuple[list[str], str | None]:
    """All genre strings of a track's artists and the most frequent parent they map to."""
    genres = [g for a in artist_ids for g in genres_by_artist.get(a, [])]
    parents = [taxonomy.parent_of(g) for g in genres]
    return list(dict.fromkeys(genres)), primary_label(parents)
