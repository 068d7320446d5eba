"""Audio feature tables -> blocks aligned to the catalogue, with a presence mask.

A block is a matrix with one row per catalogue track plus a boolean ``present`` vector: a track that
has no value for a block (no audio, extraction failed) keeps ``present=False`` and the embedding
builder leaves that block out of its vector instead of inventing numbers. An audio block is one
Parquet per block in a features dir: columns ``file, track_id, ok, reason`` plus numeric features.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, SchemaError
from ..io import read_table
from ..schema import META_COLUMNS, STATS
from .base import Block
from .registry import audio_names

log = logging.getLogger(__name__)


def read_feature_block(features_dir: str | Path, name: str) -> pd.DataFrame:
    """Read ``<features_dir>/<name>.parquet`` and check its bookkeeping columns."""
    path = Path(features_dir) / f"{name}.parquet"
    if not path.exists():
        raise InputError(f"{path}: feature block {name!r} not found in {features_dir}")
    df = read_table(path)
    missing = [c for c in ("track_id", "ok") if c not in df.columns]
    if missing:
        raise SchemaError(f"{path}: missing column(s) {', '.join(missing)}")
    df = df.copy()
    df["track_id"] = df["track_id"].astype("string").str.strip()
    df["ok"] = df["ok"].fillna(False).astype(bool)
    return df


def feature_columns(df: pd.DataFrame) -> list[str]:
    """Numeric feature columns of a block table (bookkeeping and text columns ignored)."""
    return [c for c in df.columns if c not in META_COLUMNS and pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])]


def build_audio_block(name: str, table: pd.DataFrame, track_ids: pd.Series) -> Block:
    """Align a block table to ``track_ids``.

    Rows with ok=False are absent; several files per track are averaged.
    """
    cols = feature_columns(table)
    if not cols:
        raise SchemaError(f"feature block {name!r} has no numeric feature columns")
    good = table[table["ok"] & table["track_id"].notna()]
    means = good.groupby("track_id", sort=False)[cols].mean() if len(good) else pd.DataFrame(columns=cols)
    aligned = means.reindex(track_ids.astype(str).to_numpy())
    values = aligned.to_numpy(dtype=np.float32, na_value=np.nan)
    present = ~np.isnan(values).all(axis=1)
    return Block(name, values, present, cols)


def available_blocks(features_dir: str | Path | None) -> list[str]:
    """Audio blocks present in a features dir, in canonical order."""
    if features_dir is None:
        return []
    d = Path(features_dir)
    if not d.is_dir():
        raise InputError(f"{d}: features dir not found")
    return [b for b in audio_names() if (d / f"{b}.parquet").exists()]


def extend_catalog(catalog: pd.DataFrame | None, features_dir: str | Path) -> tuple[pd.DataFrame, int, int]:
    """Add audio files whose track_id has no catalogue row as tracks of their own.

    Only files with at least one block extracted (``ok``) become tracks: a file every block failed
    on (empty, not audio, truncated) has nothing to embed. Their 12 statistics come from
    ``audiostats.parquet`` when present, else stay missing. Returns (catalogue, tracks added,
    files left out because every block failed).
    """
    names = available_blocks(features_dir)
    ids: dict[str, str] = {}
    seen: set[str] = set()
    for b in names:
        t = read_feature_block(features_dir, b)
        files = t["file"].astype("string") if "file" in t.columns else t["track_id"]
        for tid, f, ok in zip(t["track_id"].tolist(), files.tolist(), t["ok"].tolist()):
            if tid is pd.NA or tid is None:
                continue
            seen.add(str(tid))
            if ok and str(tid) not in ids:
                ids[str(tid)] = str(f) if f is not pd.NA and f is not None else str(tid)
    known = set(catalog["track_id"].astype(str)) if catalog is not None else set()
    new = [t for t in ids if t not in known]
    left_out = len(seen - set(ids) - known)
    if left_out:
        log.warning("%d audio file(s) left out: every feature block failed on them (see %s)", left_out,
                    Path(features_dir) / "failures.csv")
    if not new:
        if catalog is None:
            raise InputError(f"{features_dir}: no catalogue given and no audio file with extracted features")
        return catalog, 0, left_out
    rows = pd.DataFrame({"track_id": new, "track_name": [Path(ids[t]).stem for t in new],
                         "track_artist": pd.array([None] * len(new), dtype="string")})
    for c in STATS:
        rows[c] = np.nan
    if "audiostats" in names:
        a = read_feature_block(features_dir, "audiostats")
        a = a[a["ok"]]
        have = [c for c in STATS if c in a.columns]
        if have:
            stats = a.groupby("track_id", sort=False)[have].mean().reindex(new)
            for c in have:
                rows[c] = stats[c].to_numpy(dtype=np.float64)
    rows["n_missing_stats"] = rows[list(STATS)].isna().sum(axis=1).astype("int64")
    rows["source"] = "audio"
    if catalog is None:
        return rows.reset_index(drop=True), len(new), left_out
    cat = catalog.copy()
    if "source" not in cat.columns:
        cat["source"] = "catalog"
    return pd.concat([cat, rows], ignore_index=True), len(new), left_out


class AudioBlock:
    """An audio block as a fitted block: its rows come from ``<features>/<name>.parquet``; tracks added
    later (``transform``) have no extracted features and are absent."""

    def __init__(self, name: str, columns: list[str] | None = None) -> None:
        self.name = name
        self.columns = columns

    def fit_transform(self, catalog: pd.DataFrame, *, features_dir: str | Path | None = None) -> Block:
        """Align the extracted block to the catalogue rows."""
        if features_dir is None:
            raise InputError(f"block {self.name!r} needs --features DIR with {self.name}.parquet")
        block = build_audio_block(self.name, read_feature_block(features_dir, self.name), catalog["track_id"])
        self.columns = list(block.columns)
        return block

    def transform(self, catalog: pd.DataFrame) -> Block:
        """New tracks' rows: absent (zeros) in the fitted columns."""
        n = len(catalog)
        return Block(self.name, np.zeros((n, len(self.columns or ())), np.float32), np.zeros(n, bool),
                     list(self.columns or ()))
