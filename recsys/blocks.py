"""Feature blocks for the engine: block name -> builder, aligned to the catalogue, with a presence mask.

A block is a matrix with one row per catalogue track plus a boolean ``present`` vector: a track that
has no value for a block (no audio, extraction failed) keeps ``present=False`` and the embedding
builder leaves that block out of its vector instead of inventing numbers.

Blocks:
- ``tabular``: the 12 statistics (median-imputed; key as sin/cos on the circle of fifths-free pitch
  wheel; duration in log minutes) plus, when available, the genre model's class probabilities
  (out-of-fold for labelled tracks, so the embedding does not memorise labels).
- audio blocks (``spectral``, ``audiostats``, ``cnn``, ``stems``, ``lyrics``): one Parquet per block
  in a features dir, columns ``file, track_id, ok, reason`` plus numeric features.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .catalog import STATS
from .errors import InputError, SchemaError

log = logging.getLogger(__name__)

#: Audio blocks a features dir may hold (one ``<name>.parquet`` each).
AUDIO_BLOCKS: tuple[str, ...] = ("spectral", "audiostats", "cnn", "stems", "lyrics")
#: Bookkeeping columns of a feature Parquet; everything else numeric is a feature.
META_COLUMNS = ("file", "track_id", "ok", "reason")


@dataclass
class Block:
    """One feature block aligned to the catalogue: ``values`` (n, d) float32, ``present`` (n,) bool."""

    name: str
    values: np.ndarray
    present: np.ndarray
    columns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        self.present = np.asarray(self.present, dtype=bool)
        if self.values.ndim != 2 or self.values.shape[0] != self.present.shape[0]:
            raise ValueError(f"block {self.name}: values {self.values.shape} vs present {self.present.shape}")


# ----------------------------------------------------------------------------- tabular block

#: Catalogue metadata the tabular block adds beside the statistics (era and popularity of a track).
METADATA: tuple[str, ...] = ("release_year", "track_popularity")


def tabular_stats(catalog: pd.DataFrame, *, medians: dict[str, float] | None = None,
                  metadata: bool = False) -> tuple[np.ndarray, list[str], dict]:
    """The 12 statistics as model-friendly columns: imputed, key on the circle, duration in log minutes.

    With ``metadata``, release year and popularity follow (missing columns count as missing values).
    Returns (matrix, column names, medians used) so new tracks can be imputed with the same medians.
    """
    names = list(STATS) + (list(METADATA) if metadata else [])
    raw = pd.DataFrame({c: pd.to_numeric(catalog[c], errors="coerce") if c in catalog.columns
                        else pd.Series(np.nan, index=catalog.index) for c in names}).astype("float64")
    if medians is None or any(c not in medians for c in names):
        medians = {c: float(raw[c].median()) if raw[c].notna().any() else 0.0 for c in names}
    filled = raw.fillna(pd.Series(medians))
    cols: list[str] = []
    out: list[np.ndarray] = []
    for c in names:
        v = filled[c].to_numpy()
        if c == "key":
            # -1 means "no key detected": put it at the centre of the circle.
            ang = 2 * np.pi * np.clip(v, 0, 11) / 12.0
            nokey = v < 0
            out += [np.where(nokey, 0.0, np.sin(ang)), np.where(nokey, 0.0, np.cos(ang))]
            cols += ["key_sin", "key_cos"]
        elif c == "duration_ms":
            out.append(np.log1p(np.clip(v, 0, None) / 60000.0))
            cols.append("log_duration_min")
        else:
            out.append(v)
            cols.append(c)
    return np.column_stack(out).astype(np.float32), cols, medians


def _genre_api():
    try:
        from .genres.tabular import GenreClassifier, tabular_features  # noqa: F401
    except ImportError:
        return None
    return GenreClassifier, tabular_features


def _rows(X, idx: np.ndarray):
    return X.iloc[idx] if isinstance(X, pd.DataFrame) else X[idx]


def genre_probabilities(catalog: pd.DataFrame, *, model_dir: str | Path | None = None, folds: int = 3,
                        model: str = "lightgbm", random_state: int = 0, params: dict | None = None,
                        ) -> tuple[np.ndarray, list[str], object] | None:
    """Genre-model probabilities per track, or None when no model can be had.

    Labelled tracks get out-of-fold probabilities (GroupKFold by artist) so a track's own label
    never leaks into its embedding; unlabelled tracks get the full model's. With no labels,
    ``model_dir`` names a trained model to use instead. Returns (probs, classes, full model).
    """
    api = _genre_api()
    if api is None:
        log.warning("recsys.genres.tabular not available: tabular block uses statistics only")
        return None
    GenreClassifier, tabular_features = api
    if model_dir is not None:
        clf = GenreClassifier.load(model_dir)
        X = tabular_features(catalog)
        return np.asarray(clf.predict_proba(X), dtype=np.float32), [str(c) for c in clf.classes_], clf
    if "parent_genre" not in catalog.columns:
        return None
    y = catalog["parent_genre"]
    labelled = y.notna().to_numpy()
    if labelled.sum() < 20 or y[labelled].nunique() < 2:
        return None
    X = tabular_features(catalog)
    from sklearn.model_selection import GroupKFold

    full = GenreClassifier(model=model, random_state=random_state, **(params or {})).fit(
        _rows(X, np.flatnonzero(labelled)), y.iloc[np.flatnonzero(labelled)])
    classes = [str(c) for c in full.classes_]
    probs = np.zeros((len(catalog), len(classes)), dtype=np.float32)
    probs[:] = np.asarray(full.predict_proba(X), dtype=np.float32)
    groups = (catalog["track_artist"].astype("string").fillna(catalog["track_id"]).to_numpy()
              if "track_artist" in catalog.columns else catalog["track_id"].to_numpy())
    lab_idx = np.flatnonzero(labelled)
    n_groups = len(pd.unique(groups[lab_idx]))
    k = min(folds, n_groups)
    if k >= 2:
        ylab = y.iloc[lab_idx].reset_index(drop=True)
        for tr, te in GroupKFold(n_splits=k).split(lab_idx, groups=groups[lab_idx]):
            if ylab.iloc[tr].nunique() < 2:
                continue
            m = GenreClassifier(model=model, random_state=random_state, **(params or {})).fit(_rows(X, lab_idx[tr]), ylab.iloc[tr])
            p = np.asarray(m.predict_proba(_rows(X, lab_idx[te])), dtype=np.float32)
            fold = np.zeros((len(te), len(classes)), dtype=np.float32)
            for j, c in enumerate(m.classes_):
                fold[:, classes.index(str(c))] = p[:, j]
            probs[lab_idx[te]] = fold
    return probs, classes, full


def cached_genre_probabilities(catalog: pd.DataFrame, *, cache_dir: str | Path | None, **kwargs):
    """:func:`genre_probabilities` with a cache keyed by catalogue content and settings.

    A rebuild (or a rerun after a killed build) of the same catalogue reuses the out-of-fold
    probabilities and the full model instead of training them again. Entries are written atomically.
    """
    if cache_dir is None or kwargs.get("model_dir") is not None:
        return genre_probabilities(catalog, **kwargs)
    from .io import atomic_dir, read_json, sha256_json, write_json

    cols = [c for c in ("track_id", "track_name", "track_artist", "track_album_name", "track_album_release_date",
                        "release_year", "track_popularity", "parent_genre", *STATS) if c in catalog.columns]
    content = pd.util.hash_pandas_object(catalog[cols].astype("string"), index=False).to_numpy()
    key = sha256_json({"content": hashlib.sha256(content.tobytes()).hexdigest(),
                       "settings": {k: v for k, v in kwargs.items() if k != "model_dir"}})[:24]
    entry = Path(cache_dir) / f"genre-{key}"
    api = _genre_api()
    if entry.is_dir() and api is not None:
        try:
            meta = read_json(entry / "meta.json")
            probs = np.load(entry / "probs.npy", allow_pickle=False)
            if probs.shape == (len(catalog), len(meta["classes"])):
                log.info("genre probabilities from cache %s", entry)
                return probs, list(meta["classes"]), api[0].load(entry / "model")
        except Exception as exc:  # a damaged entry is recomputed, never trusted
            log.warning("ignoring damaged cache entry %s (%s)", entry, exc)
    out = genre_probabilities(catalog, **kwargs)
    if out is not None:
        with atomic_dir(entry) as tmp:
            np.save(tmp / "probs.npy", out[0], allow_pickle=False)
            (tmp / "model").mkdir()
            out[2].write_files(tmp / "model")
            write_json(tmp / "meta.json", {"classes": out[1]})
    return out


def build_tabular(catalog: pd.DataFrame, *, probs: tuple[np.ndarray, list[str]] | None = None,
                  medians: dict | None = None, metadata: bool = True) -> tuple[Block, dict]:
    """Tabular block = imputed statistics (+ year, popularity) (+ genre probabilities).

    Present unless all 12 statistics are missing.
    """
    X, cols, medians = tabular_stats(catalog, medians=medians, metadata=metadata)
    present = ~catalog[list(STATS)].isna().all(axis=1).to_numpy()
    if probs is not None:
        P, classes = probs[0], probs[1]
        X = np.hstack([X, P.astype(np.float32)])
        cols = cols + [f"p_{c}" for c in classes]
    return Block("tabular", X, present, cols), medians


# ----------------------------------------------------------------------------- audio blocks

def read_feature_block(features_dir: str | Path, name: str) -> pd.DataFrame:
    """Read ``<features_dir>/<name>.parquet`` and check its bookkeeping columns."""
    path = Path(features_dir) / f"{name}.parquet"
    if not path.exists():
        raise InputError(f"{path}: feature block {name!r} not found in {features_dir}")
    from .io import read_table

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
    """Align a block table to ``track_ids``: rows with ok=False are absent; several files per track are averaged."""
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
    return [b for b in AUDIO_BLOCKS if (d / f"{b}.parquet").exists()]


def extend_catalog(catalog: pd.DataFrame | None, features_dir: str | Path) -> tuple[pd.DataFrame, int]:
    """Add audio files whose track_id has no catalogue row as tracks of their own.

    Their 12 statistics come from ``audiostats.parquet`` (columns named like STATS) when present,
    else stay missing. Returns (catalogue, number of tracks added).
    """
    names = available_blocks(features_dir)
    ids: dict[str, str] = {}
    for b in names:
        t = read_feature_block(features_dir, b)
        files = t["file"].astype("string") if "file" in t.columns else t["track_id"]
        for tid, f in zip(t["track_id"].tolist(), files.tolist()):
            if tid is not pd.NA and tid is not None and tid not in ids:
                ids[str(tid)] = str(f) if f is not pd.NA and f is not None else str(tid)
    known = set(catalog["track_id"].astype(str)) if catalog is not None else set()
    new = [t for t in ids if t not in known]
    if not new:
        if catalog is None:
            raise InputError(f"{features_dir}: no catalogue given and no audio feature rows found")
        return catalog, 0
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
        return rows.reset_index(drop=True), len(new)
    cat = catalog.copy()
    if "source" not in cat.columns:
        cat["source"] = "catalog"
    return pd.concat([cat, rows], ignore_index=True), len(new)


#: block name -> builder(catalog, features_dir) -> Block. "tabular" is built by the engine (it needs the genre model).
BUILDERS: dict[str, Callable[[pd.DataFrame, str | Path], Block]] = {
    name: (lambda n: (lambda catalog, features_dir: build_audio_block(
        n, read_feature_block(features_dir, n), catalog["track_id"])))(name)
    for name in AUDIO_BLOCKS
}


def build_block(name: str, catalog: pd.DataFrame, *, features_dir: str | Path | None = None) -> Block:
    """Build an audio block by name from the features dir."""
    if name not in BUILDERS:
        raise InputError(f"unknown block {name!r} (choose from tabular, {', '.join(BUILDERS)})")
    if features_dir is None:
        raise InputError(f"block {name!r} needs --features DIR with {name}.parquet")
    return BUILDERS[name](catalog, features_dir)
