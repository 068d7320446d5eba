"""Track catalogue: load, validate and merge tables of Spotify-style audio statistics.

Input is one row per (track, playlist) as in the TidyTuesday table, or any table with
``track_id``; the 12 statistics are optional (a Spotify import after 2024 has none: missing columns
become NaN). Output is one row per track: statistics from its first row, and every label it was
listed with kept in list columns (a track in a pop and an edm playlist keeps both).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import InputError, SchemaError
from .genres.taxonomy import Taxonomy, parent_for_row, primary_label
from .io import read_table
from .schema import LABEL_LISTS, NUMERIC_META, STAT_RANGES, STATS, TEXT_COLUMNS

log = logging.getLogger(__name__)

def _bad_row(df: pd.DataFrame, mask: pd.Series) -> str:
    i = int(np.flatnonzero(mask.to_numpy())[0])
    tid = df["track_id"].iloc[i] if "track_id" in df.columns else None
    return f"row {i + 1}" + (f" (track_id {tid})" if tid is not None and not pd.isna(tid) else "")


def validate(df: pd.DataFrame, *, where: str = "catalog") -> pd.DataFrame:
    """Check columns and types; return a copy with numeric statistics and string ids.

    Statistics are optional: missing values and missing columns are NaN (counted in
    ``n_missing_stats``); see :func:`stats_coverage` for what a table lacks.
    """
    if df is None or len(df) == 0:
        raise SchemaError(f"{where}: table is empty")
    df = df.copy()
    df.columns = [str(c).strip() for c in df.columns]
    if "track_id" not in df.columns:
        raise SchemaError(f"{where}: missing column track_id (need track_id; the 12 statistics "
                          f"{', '.join(STATS)} are optional)")
    for col in STATS:
        if col not in df.columns:
            df[col] = np.nan
    ids = df["track_id"]
    bad = ids.isna() | (ids.astype(str).str.strip() == "")
    if bad.any():
        raise SchemaError(f"{where}: column track_id is empty at {_bad_row(df, bad)}")
    df["track_id"] = ids.astype(str).str.strip()
    for col in (*STATS, *[c for c in NUMERIC_META if c in df.columns]):
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
        if bad.any():
            value = raw[bad].iloc[0]
            raise SchemaError(f"{where}: column {col} must be numeric, got {value!r} at {_bad_row(df, bad)}")
        if col in STAT_RANGES:
            lo, hi = STAT_RANGES[col]
            bad = num.notna() & ((num < lo) | (num > hi))
            if bad.any():
                raise SchemaError(f"{where}: column {col} value {float(num[bad].iloc[0])!r} "
                                  f"outside [{lo}, {hi}] at {_bad_row(df, bad)}")
        df[col] = num.astype("float64")
    for col in TEXT_COLUMNS:
        if col in df.columns:
            df[col] = df[col].astype("string")
    if "release_year" not in df.columns and "track_album_release_date" in df.columns:
        year = df["track_album_release_date"].str.slice(0, 4)
        df["release_year"] = pd.to_numeric(year, errors="coerce").astype("float64")
    df["n_missing_stats"] = df[list(STATS)].isna().sum(axis=1).astype("int64")
    return df


def read_rows(source: str | os.PathLike | pd.DataFrame, *, taxonomy: Taxonomy | None = None) -> pd.DataFrame:
    """Read and validate a table without merging; adds ``parent_genre`` per row when labels exist."""
    where = "catalog" if isinstance(source, pd.DataFrame) else str(source)
    df = source if isinstance(source, pd.DataFrame) else read_table(source)
    df = validate(df, where=where)
    return add_parent_genres(df, taxonomy)


def add_parent_genres(rows: pd.DataFrame, taxonomy: Taxonomy | None = None) -> pd.DataFrame:
    """Add ``parent_genre`` (one of the 13 parents or missing) per row from genre/subgenre columns."""
    genre_col = next((c for c in ("playlist_genre", "genre") if c in rows.columns), None)
    sub_col = "playlist_subgenre" if "playlist_subgenre" in rows.columns else None
    if genre_col is None and sub_col is None:
        return rows
    taxonomy = taxonomy or Taxonomy.load()
    g = rows[genre_col] if genre_col else pd.Series([None] * len(rows), index=rows.index)
    s = rows[sub_col] if sub_col else pd.Series([None] * len(rows), index=rows.index)
    cache: dict[tuple, str | None] = {}
    parents = []
    for a, b in zip(g.tolist(), s.tolist()):
        key = (a, b)
        if key not in cache:
            cache[key] = parent_for_row(taxonomy, None if a is pd.NA else a, None if b is pd.NA else b)
        parents.append(cache[key])
    rows = rows.copy()
    rows["parent_genre"] = pd.array(parents, dtype="string")
    return rows


def _distinct(values: Iterable) -> list[str]:
    out: list[str] = []
    for v in values:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            continue
        if v not in out:
            out.append(str(v))
    return out


def _as_lists(s: pd.Series) -> pd.Series:
    # Plain Python lists (object dtype): an Arrow list dtype does not survive a Parquet roundtrip.
    return pd.Series(list(s), index=s.index, dtype=object)


def _check_conflicts(rows: pd.DataFrame, on_conflict: str) -> None:
    """Rows sharing a track_id must describe one song: same name and statistics up to rounding."""
    if on_conflict not in ("error", "first"):
        raise InputError(f"on_conflict must be 'error' or 'first', not {on_conflict!r}")
    dup = rows["track_id"].duplicated(keep=False).to_numpy()
    if not dup.any():
        return
    d = rows.loc[dup]
    first = d.groupby("track_id", sort=False).transform("first")
    stats = d[list(STATS)].to_numpy(dtype=np.float64, na_value=np.nan)
    ref = first[list(STATS)].to_numpy(dtype=np.float64, na_value=np.nan)
    differs = ~(np.isclose(stats, ref, rtol=1e-3, atol=1e-3) | (np.isnan(stats) & np.isnan(ref))).all(axis=1)
    if "track_name" in d.columns:
        a = d["track_name"].astype("string").str.strip().str.lower().fillna("")
        b = first["track_name"].astype("string").str.strip().str.lower().fillna("")
        differs |= (a != b).to_numpy()
    if not differs.any():
        return
    pos = np.flatnonzero(dup)[np.flatnonzero(differs)[0]]
    tid = rows["track_id"].iloc[pos]
    first_pos = int(np.flatnonzero((rows["track_id"] == tid).to_numpy())[0])
    n = int(d.loc[differs, "track_id"].nunique())
    what = f"{n} track id(s) name different songs, e.g. track_id {tid}: " \
           f"row {first_pos + 1} and row {pos + 1} differ in name or statistics"
    if on_conflict == "error":
        raise SchemaError(f"{what}; fix the table, or keep the first row of each id (on_conflict='first', "
                          f"CLI --on-conflict first)")
    log.warning("%s; keeping the first row of each id (on_conflict='first')", what)


def merge_tracks(rows: pd.DataFrame, *, on_conflict: str = "error") -> pd.DataFrame:
    """One row per track_id: first row's values, label columns gathered into lists.

    Rows of one id that disagree in name or statistics (beyond rounding) are two songs: an error,
    or with ``on_conflict="first"`` a warning that keeps the first row.

    ``parent_genre`` becomes the track's most frequent parent (ties: first listed) and
    ``parent_genres`` keeps all of them; ``n_listings`` counts the input rows merged.
    """
    _check_conflicts(rows, on_conflict)
    grouped = rows.groupby("track_id", sort=False)
    merged = grouped.head(1).set_index("track_id")
    merged["n_listings"] = grouped.size()
    # Python-level aggregation only for ids listed more than once (200k unique rows: 137 s -> < 1 s)
    multi = rows["track_id"].duplicated(keep=False).to_numpy()
    many = rows.loc[multi].groupby("track_id", sort=False)

    def gather(col: str, fn) -> pd.Series:
        single = rows.loc[~multi].set_index("track_id")[col]
        done = pd.Series([fn([v]) for v in single.tolist()], index=single.index, dtype=object)
        if multi.any():
            done = pd.concat([done, many[col].agg(lambda s: fn(s.tolist()))])
        return done.reindex(merged.index)

    for src, dst in LABEL_LISTS.items():
        if src in rows.columns:
            merged[dst] = _as_lists(gather(src, _distinct))
    if "parent_genre" in rows.columns:
        merged["parent_genres"] = _as_lists(gather("parent_genre", _distinct))
        primary = gather("parent_genre", lambda vs: primary_label(x for x in vs if x is not pd.NA))
        merged["parent_genre"] = pd.array(primary.tolist(), dtype="string")
    return merged.reset_index()


def load_catalog(source: str | os.PathLike | pd.DataFrame, *, taxonomy: Taxonomy | None = None,
                 on_conflict: str = "error") -> pd.DataFrame:
    """Read, validate, map genres to parents and merge to one row per track (see :func:`merge_tracks`)."""
    return merge_tracks(read_rows(source, taxonomy=taxonomy), on_conflict=on_conflict)


def stats_matrix(catalog: pd.DataFrame) -> np.ndarray:
    """The 12 statistics as float32, NaN where missing, in :data:`STATS` order."""
    return catalog[list(STATS)].to_numpy(dtype=np.float32, na_value=np.nan)


def stats_coverage(catalog: pd.DataFrame) -> dict:
    """What a table lacks: tracks without any statistic, and statistic columns with no value at all."""
    have = [c for c in STATS if c in catalog.columns]
    X = catalog[have].apply(pd.to_numeric, errors="coerce") if have else pd.DataFrame(index=catalog.index)
    feat = [c for c in have if c != "duration_ms"]  # duration always comes with a track's metadata
    none = X[feat].isna().all(axis=1) if feat else pd.Series(True, index=catalog.index)
    return {"tracks": len(catalog), "without_stats": int(none.sum()), "mask": none.to_numpy(dtype=bool),
            "empty_columns": [c for c in STATS if c not in have or X[c].isna().all()]}


def read_stats(path: str | os.PathLike) -> pd.DataFrame:
    """A statistics table keyed by ``track_id`` (or by an audio ``file``/``path`` named after the id).

    Accepts any subset of the 12 statistic columns: the audio pipeline's ``audiostats.parquet`` (rows
    with ``ok=false`` ignored; a ``track_id`` there comes from ``features extract --mapping``) or a public
    dataset. One row per track_id (the first).
    """
    df = read_table(path)
    if "ok" in df.columns:  # a feature-block Parquet: keep rows whose extraction succeeded
        df = df[df["ok"].fillna(False).astype(bool)]
    key = next((c for c in ("path", "file", "filename") if c in df.columns), None)
    if "track_id" not in df.columns and key is None:
        raise SchemaError(f"{path}: a statistics table needs a track_id column (or a path/file column "
                          "whose file names are track ids)")
    df = df.copy()
    stems = ([Path(str(p)).name.split(".")[0] for p in df[key]] if key is not None
             else [None] * len(df))
    ids = df["track_id"].astype("string").str.strip() if "track_id" in df.columns else None
    df["track_id"] = [s if (ids is None or pd.isna(ids.iloc[i]) or not ids.iloc[i]) else ids.iloc[i]
                      for i, s in enumerate(stems)]
    df = df[df["track_id"].notna()]
    cols = [s for s in STATS if s in df.columns]
    if not cols:
        raise SchemaError(f"{path}: none of the 12 statistics ({', '.join(STATS)}) is a column")
    out = df[["track_id", *cols]].copy()
    out["track_id"] = out["track_id"].astype(str).str.strip()
    for c in cols:
        out[c] = pd.to_numeric(out[c], errors="coerce")
    return out.drop_duplicates("track_id", keep="first")


def fill_stats(df: pd.DataFrame, stats: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Fill missing statistics in ``df`` from ``stats`` matched by track_id; returns (df, tracks filled)."""
    stats = (stats.assign(track_id=stats["track_id"].astype(str)).drop_duplicates("track_id")
             .set_index("track_id"))
    df = df.copy()
    filled_ids: set[str] = set()
    for c in stats.columns:
        if c not in STATS:
            continue
        values = df["track_id"].astype(str).str.strip().map(stats[c]).astype("float64")
        if c not in df.columns:
            df[c] = np.nan
        current = pd.to_numeric(df[c], errors="coerce")
        mask = current.isna() & values.notna()
        if mask.any():
            df[c] = current.where(~mask, values)
            filled_ids.update(df.loc[mask, "track_id"].astype(str).tolist())
    return df, len(filled_ids)


def missing_stats_note(coverage: dict, audio_blocks: Sequence = (), *,
                       genre_skipped: bool = False) -> str | None:
    """One line saying which statistics a build lacks and what that costs (None when nothing is missing).

    ``audio_blocks`` are the built audio blocks (``.name``, ``.present``): tracks without statistics
    that have one are counted apart.
    """
    n, total, empty = coverage["without_stats"], coverage["tracks"], coverage["empty_columns"]
    if not n and not empty:
        return None
    mask = coverage.get("mask")
    heard = [b for b in audio_blocks if mask is not None and (b.present & mask).any()]
    n_audio = int(np.logical_or.reduce([b.present & mask for b in heard]).sum()) if heard else 0
    instead = "metadata only" if not n_audio else \
        f"metadata ({n_audio} of them also the audio blocks {', '.join(b.name for b in heard)})"
    genre = "; no genre-model probabilities (it needs all 12 statistics)" if genre_skipped else ""
    fix = "; add --stats FILE or a music folder (recsys spotify match, docs/spotify.md)"
    head = f"no audio statistics for {n} of {total} tracks: "
    if n == total:
        return f"{head}content similarity and the map use {instead}{genre}{fix}"
    if n:
        return f"{head}their content similarity and map position use {instead}{genre}{fix}"
    return f"statistic column(s) without any value: {', '.join(empty)} (not in the embedding){genre}{fix}"
