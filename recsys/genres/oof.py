"""Out-of-fold genre probabilities for the engine's tabular block, with a cache.

Labelled tracks get probabilities from a model that never saw their artist (the same stratified
artist-grouped folds as ``recsys genres train``); unlabelled tracks get the full model's.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_dir, read_json, sha256_json, write_json
from ..schema import STATS
from .evaluate import artist_groups, grouped_folds
from .tabular import GenreClassifier, tabular_features

log = logging.getLogger(__name__)


def _rows(X, idx: np.ndarray):
    return X.iloc[idx] if isinstance(X, pd.DataFrame) else X[idx]


def genre_probabilities(catalog: pd.DataFrame, *, model_dir: str | Path | None = None, folds: int = 3,
                        model: str = "lightgbm", random_state: int = 0, params: dict | None = None,
                        ) -> tuple[np.ndarray, list[str], GenreClassifier] | None:
    """Genre-model probabilities per track, or None when no model can be had.

    Labelled tracks get out-of-fold probabilities (:func:`grouped_folds`, by artist) so a track's own
    label never leaks into its embedding; unlabelled tracks get the full model's. With no labels,
    ``model_dir`` names a trained model to use instead. Returns (probs, classes, full model).
    """
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
    lab_idx = np.flatnonzero(labelled)
    ylab = y.iloc[lab_idx].astype(str).to_numpy()

    def fit(rows: np.ndarray) -> GenreClassifier:
        return GenreClassifier(model=model, random_state=random_state, **(params or {})).fit(
            _rows(X, lab_idx[rows]), ylab[rows])

    full = fit(np.arange(len(lab_idx)))
    classes = [str(c) for c in full.classes_]
    probs = np.asarray(full.predict_proba(X), dtype=np.float32)
    groups = artist_groups(catalog)[lab_idx]
    k = min(folds, len(set(groups.tolist())))
    if k >= 2:
        for tr, te in grouped_folds(ylab, groups, n_splits=k, seed=random_state):
            if len(set(ylab[tr].tolist())) < 2:
                continue
            m = fit(tr)
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
    cols = [c for c in ("track_id", "track_name", "track_artist", "track_album_name",
                        "track_album_release_date", "release_year", "track_popularity", "parent_genre",
                        *STATS) if c in catalog.columns]
    content = pd.util.hash_pandas_object(catalog[cols].astype("string"), index=False).to_numpy()
    key = sha256_json({"content": hashlib.sha256(content.tobytes()).hexdigest(),
                       "settings": {k: v for k, v in kwargs.items() if k != "model_dir"}})[:24]
    entry = Path(cache_dir) / f"genre-{key}"
    if entry.is_dir():
        try:
            meta = read_json(entry / "meta.json")
            probs = np.load(entry / "probs.npy", allow_pickle=False)
            if probs.shape == (len(catalog), len(meta["classes"])):
                log.info("genre probabilities from cache %s", entry)
                return probs, list(meta["classes"]), GenreClassifier.load(entry / "model")
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
