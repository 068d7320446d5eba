"""Block ``tabular``: the 12 statistics (+ release year, popularity) (+ genre-model probabilities).

Without statistics (a Spotify import after 2024) it is built from what exists: release year,
popularity and the tracks' genre labels (playlist or artist genres) as 0/1 columns.

Statistics are median-imputed, key goes on the pitch circle (sin/cos), duration into log minutes.
Genre probabilities are out-of-fold for labelled tracks (``recsys.genres.oof``), so a track's
embedding never memorises its own label.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import METADATA, STATS
from .base import Block, BlockSpec

SPEC = BlockSpec(name="tabular", source="catalog", version=1, order=0,
                 columns="12 statistics (key as sin/cos, log duration), release_year, track_popularity, "
                         "p_<genre>",
                 help="catalogue statistics and genre probabilities; built by build-index from --catalog")


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


def label_classes(catalog: pd.DataFrame) -> list[str]:
    """Parent genres the catalogue's tracks are labelled with (playlist or artist genres), sorted."""
    return sorted({g for gs in _labels(catalog) for g in gs})


def _labels(catalog: pd.DataFrame) -> list[list[str]]:
    if "parent_genres" in catalog.columns:
        return [[str(g) for g in v] if isinstance(v, (list, tuple, np.ndarray)) else [] for v in
                catalog["parent_genres"]]
    if "parent_genre" in catalog.columns:
        return [[str(v)] if isinstance(v, str) else [] for v in catalog["parent_genre"]]
    return [[] for _ in range(len(catalog))]


def build_tabular(catalog: pd.DataFrame, *, probs: tuple[np.ndarray, list[str]] | None = None,
                  medians: dict | None = None, metadata: bool = True,
                  labels: list[str] | None = None) -> tuple[Block, dict]:
    """Tabular block = imputed statistics (+ year, popularity) (+ genre probabilities) (+ genre labels).

    ``labels`` (classes) adds a 0/1 column ``label_<genre>`` per class: the content a catalogue
    without statistics still has. A track is present when it has any statistic, or (without
    statistics) any metadata value or label.
    """
    X, cols, medians = tabular_stats(catalog, medians=medians, metadata=metadata)
    stats = catalog[[c for c in STATS if c in catalog.columns]].apply(pd.to_numeric, errors="coerce")
    present = (stats.notna().any(axis=1).to_numpy(copy=True) if len(stats.columns)
               else np.zeros(len(catalog), bool))
    if metadata:
        meta = [c for c in METADATA if c in catalog.columns]
        if meta:
            present |= catalog[meta].apply(pd.to_numeric, errors="coerce").notna().any(axis=1).to_numpy()
    if probs is not None:
        P, classes = probs[0], probs[1]
        X = np.hstack([X, P.astype(np.float32)])
        cols = cols + [f"p_{c}" for c in classes]
    if labels:
        have = _labels(catalog)
        L = np.array([[c in h for c in labels] for h in have], dtype=np.float32).reshape(len(catalog), -1)
        X = np.hstack([X, L])
        cols = cols + [f"label_{c}" for c in labels]
        present |= L.any(axis=1)
    return Block("tabular", X, present, cols), medians
