"""Block ``tabular``: the 12 statistics (+ release year, popularity) (+ genre-model probabilities).

Without statistics (a Spotify import after 2024) it is built from what exists: release year,
popularity and the tracks' genre labels (playlist or artist genres) as 0/1 columns.

Statistics are median-imputed, key goes on the pitch circle (sin/cos), duration into log minutes.
Genre probabilities are out-of-fold for labelled tracks (``recsys.genres.oof``), so a track's
embedding never memorises its own label.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, ModelError
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


class TabularBlock:
    """The tabular block as an estimator: ``fit_transform`` learns the medians, the genre model (out-of-fold
    probabilities for the catalogue's own tracks) and the label classes; ``transform`` embeds new tracks
    with them. Learned: ``medians_``, ``genre_classes_``, ``label_classes_``, ``genre_model_``."""

    name = "tabular"

    def __init__(self, *, metadata: bool = True, genre_probs: bool = True, genre_folds: int = 3,
                 genre_model: str = "lightgbm", genre_params: dict | None = None,
                 genre_max_rows: int | None = None, genre_weight: float = 1.0, seed: int = 0,
                 model_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 progress: bool = False) -> None:
        self.metadata = metadata
        self.genre_probs = genre_probs
        self.genre_folds = genre_folds
        self.genre_model = genre_model
        self.genre_params = genre_params
        self.genre_max_rows = genre_max_rows
        self.genre_weight = genre_weight
        self.seed = seed
        self.model_dir = model_dir
        self.cache_dir = cache_dir
        self.progress = progress

    @property
    def genre_classifier(self):
        """The fitted genre model behind the probability columns (a GenreClassifier), or None."""
        return self.genre_model_

    @property
    def genre_classes(self) -> list[str] | None:
        """The genres whose probabilities are columns of the block (None: no genre model)."""
        return self.genre_classes_

    def wants_genre_model(self, catalog: pd.DataFrame) -> bool:
        """Whether fitting trains (or reads) a genre model: asked for, and every statistic has values."""
        from ..catalog import stats_coverage

        return self.genre_probs and not stats_coverage(catalog)["empty_columns"]

    def fit_transform(self, catalog: pd.DataFrame, *, features_dir=None) -> Block:
        """Fit on the catalogue and return its block; genre labels become columns only when statistics
        are mostly missing and no genre model ran."""
        from ..catalog import stats_coverage

        probs = None
        if self.wants_genre_model(catalog):
            from ..genres.oof import cached_genre_probabilities

            probs = cached_genre_probabilities(catalog, cache_dir=self.cache_dir, model_dir=self.model_dir,
                                               folds=self.genre_folds, model=self.genre_model,
                                               random_state=self.seed, params=self.genre_params,
                                               max_rows=self.genre_max_rows, progress=self.progress)
        self.genre_model_ = probs[2] if probs is not None else None
        self.genre_classes_ = list(probs[1]) if probs is not None else None
        coverage = stats_coverage(catalog)
        mostly_bare = 2 * coverage["without_stats"] >= coverage["tracks"]
        self.label_classes_ = (label_classes(catalog) or None) if probs is None and mostly_bare else None
        block, self.medians_ = build_tabular(catalog, probs=None if probs is None else probs[:2],
                                             metadata=self.metadata, labels=self.label_classes_)
        if not block.present.any():
            raise InputError("nothing to embed in the tabular block: no track has any of the 12 statistics, "
                             "a release year, a popularity or a genre label (add --stats or --features)")
        return self._weighted(block)

    def transform(self, catalog: pd.DataFrame) -> Block:
        """The block of new tracks with the fitted medians, genre model and label classes."""
        probs = None
        if self.genre_classes_:
            if self.genre_model_ is None:
                raise ModelError("index uses genre probabilities but its genre model is missing")
            from ..genres.tabular import tabular_features

            P = np.asarray(self.genre_model_.predict_proba(tabular_features(catalog)), dtype=np.float32)
            probs = (P, self.genre_classes_)
        block, _ = build_tabular(catalog, probs=probs, medians=self.medians_, metadata=self.metadata,
                                 labels=self.label_classes_)
        return self._weighted(block)

    def _weighted(self, block: Block) -> Block:
        """Genre-probability columns weigh ``genre_weight`` in the embedding."""
        block.weights = np.array([self.genre_weight if c.startswith("p_") else 1.0 for c in block.columns])
        return block

    # -------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> dict:
        """Write ``genre_model/`` when there is one; returns the JSON-able state for the manifest."""
        if self.genre_model_ is not None:
            (Path(directory) / "genre_model").mkdir()
            self.genre_model_.write_files(Path(directory) / "genre_model")
        return {"medians": self.medians_, "genre_classes": self.genre_classes_,
                "label_classes": self.label_classes_}

    @classmethod
    def load(cls, directory: str | Path, state: dict, *, has_model: bool, **params) -> TabularBlock:
        """Rebuild the fitted block from :meth:`save`'s state (and ``genre_model/`` when ``has_model``)."""
        self = cls(**params)
        try:
            self.medians_ = dict(state["medians"])
        except (KeyError, TypeError) as exc:
            raise ModelError(f"tabular block state is corrupted ({exc})") from None
        self.genre_classes_ = state.get("genre_classes") or None
        self.label_classes_ = state.get("label_classes") or None
        self.genre_model_ = None
        if has_model:
            from ..genres.tabular import GenreClassifier

            self.genre_model_ = GenreClassifier.load(Path(directory) / "genre_model")
        return self
