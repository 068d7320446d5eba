"""The tracks of one index: ids, row lookup, display names, statistics and metadata codes.

Row i is track i of the embeddings, the FAISS index and ``tracks.parquet``; rows are only ever
appended (``extend``), never renumbered.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .errors import InputError
from .schema import STATS, TRACK_COLUMNS

#: Columns kept as strings / as floats when a catalogue becomes a track table.
_TEXT = ("track_id", "track_name", "track_artist", "track_album_id", "track_album_name", "parent_genre",
         "source")
_NUMBERS = ("track_popularity", "release_year")


class TrackTable:
    """Display, metadata and statistics columns per track (``frame``) with an O(1) id -> row lookup."""

    def __init__(self, frame: pd.DataFrame) -> None:
        frame = frame.reset_index(drop=True)
        ids = frame["track_id"].astype(str).tolist()
        self._row = {t: i for i, t in enumerate(ids)}
        if len(self._row) != len(ids):
            raise InputError("catalogue has duplicate track ids")
        self.frame = frame
        self.ids = np.asarray(ids, dtype=object)
        # object arrays, not lists or per-row iloc: O(1) lookups and nothing for the GC to traverse
        self.names = self._objects("track_name")
        self.artists = self._objects("track_artist")
        self.tags = self._objects("tags")  # the musicnn block's top tags, when the index has them

    @classmethod
    def from_catalog(cls, catalog: pd.DataFrame) -> TrackTable:
        """The columns an index keeps from a catalogue (the 12 statistics too, for reports and the ranker)."""
        t = catalog[[c for c in (*TRACK_COLUMNS, *STATS) if c in catalog.columns]].copy()
        for c in _TEXT:
            if c in t.columns:
                t[c] = t[c].astype("string")
        for c in _NUMBERS:
            if c in t.columns:
                t[c] = pd.to_numeric(t[c], errors="coerce").astype("float64")
        return cls(t)

    def extend(self, catalog: pd.DataFrame) -> TrackTable:
        """A new table with ``catalog``'s tracks appended (ids already present are an error)."""
        new = TrackTable.from_catalog(catalog).frame
        return TrackTable(pd.concat([self.frame, new], ignore_index=True) if len(self) else new)

    @property
    def row_of(self) -> dict[str, int]:
        """The id -> row dict itself (for ``Series.map``; do not modify it)."""
        return self._row

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, track_id: object) -> bool:
        ok = isinstance(track_id, (str, int)) and not isinstance(track_id, bool)
        return ok and self.get(track_id) is not None

    def get(self, track_id: object) -> int | None:
        """The row of ``track_id`` (surrounding spaces ignored), None when unknown."""
        return self._row.get(str(track_id).strip())

    def row(self, track_id: str) -> int:
        """The row of one track id; anything else than a known id is an InputError."""
        if not isinstance(track_id, (str, int)) or isinstance(track_id, bool):
            raise InputError(f"track id must be a string, got {track_id!r}")
        row = self.get(track_id)
        if row is None:
            raise InputError(f"unknown track id {track_id!r}")
        return row

    def rows(self, track_ids: Iterable[object]) -> tuple[list[int], list[str]]:
        """Rows of the known ids (in order) and the unknown ids."""
        rows, unknown = [], []
        for t in track_ids:
            r = self.get(t)
            (unknown.append(str(t)) if r is None else rows.append(r))
        return rows, unknown

    def record(self, row: int) -> dict:
        """One track's columns as plain Python values (missing values are None)."""
        out = {}
        for c, v in self.frame.iloc[int(row)].items():
            out[c] = None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else (
                v.item() if isinstance(v, np.generic) else v)
        return out

    def column(self, name: str) -> pd.Series | None:
        """One column of ``frame``, None when the catalogue did not have it."""
        return self.frame[name] if name in self.frame.columns else None

    def numbers(self, name: str) -> np.ndarray | None:
        """One column as float64 (NaN where missing or not a number), None when absent."""
        col = self.column(name)
        return None if col is None else pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)

    def meta_codes(self) -> dict[str, np.ndarray]:
        """Integer codes per row for artist and album (-1 when unknown), for the metadata sources."""
        t = self.frame
        out = {}
        if "track_artist" in t.columns:
            out["artist"] = pd.factorize(t["track_artist"].astype("string").str.strip().str.lower())[0]
        if "track_album_id" in t.columns:
            out["album"] = pd.factorize(t["track_album_id"].astype("string"))[0]
        elif "track_album_name" in t.columns and "track_artist" in t.columns:
            out["album"] = pd.factorize(t["track_artist"].astype("string") + "\x1f"
                                        + t["track_album_name"].astype("string"))[0]
        return out

    def _objects(self, name: str) -> np.ndarray:
        col = self.column(name)
        if col is None:
            return np.full(len(self.ids), None, dtype=object)
        return col.to_numpy(dtype=object, na_value=None)
