"""Out-of-fold genre probabilities for the engine's tabular block, with a cache.

Labelled tracks get probabilities from a model that never saw their artist (the same stratified
artist-grouped folds as ``recsys genres train``); unlabelled tracks get the full model's. On large
catalogues each model fits on a stratified sample of its training tracks (``max_rows``) and predicts
every track: the step grows with the catalogue only through prediction, and the log says so.
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


def sample_rows(y: np.ndarray, max_rows: int | None, *, seed: int) -> np.ndarray:
    """Positions of at most ``max_rows`` of ``y``, stratified by class (every class kept), sorted."""
    n = len(y)
    if not max_rows or n <= max_rows:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, inverse = np.unique(y, return_inverse=True)
    picked = []
    for c in range(len(classes)):
        rows = np.flatnonzero(inverse == c)
        take = max(1, int(round(len(rows) * max_rows / n)))
        picked.append(rng.choice(rows, size=min(take, len(rows)), replace=False))
    return np.sort(np.concatenate(picked))


def genre_probabilities(catalog: pd.DataFrame, *, model_dir: str | Path | None = None, folds: int = 3,
                        model: str = "lightgbm", random_state: int = 0, params: dict | None = None,
                        max_rows: int | None = None, progress: bool = False,
                        ) -> tuple[np.ndarray, list[str], GenreClassifier] | None:
    """Genre-model probabilities per track, or None when no model can be had.

    Labelled tracks get out-of-fold probabilities (:func:`grouped_folds`, by artist) so a track's own
    label never leaks into its embedding; unlabelled tracks get the full model's. With no labels,
    ``model_dir`` names a trained model to use instead. ``max_rows``: each model fits on a stratified
    sample of at most that many tracks. Returns (probs, classes, full model).
    """
    from ..progress import bar

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

    if max_rows and len(lab_idx) > max_rows:
        log.warning("genre probabilities: %s labelled tracks; each genre model is fitted on a stratified "
                    "sample of %s of its training tracks and predicts all of them (engine.genre_max_rows)",
                    f"{len(lab_idx):,}", f"{max_rows:,}")

    def fit(rows: np.ndarray) -> GenreClassifier:
        rows = rows[sample_rows(ylab[rows], max_rows, seed=random_state)]
        return GenreClassifier(model=model, random_state=random_state, **(params or {})).fit(
            _rows(X, lab_idx[rows]), ylab[rows])

    groups = artist_groups(catalog)[lab_idx]
    k = min(folds, len(set(groups.tolist())))
    steps = bar(total=1 + (k if k >= 2 else 0), desc="genre probabilities", unit="model", enabled=progress)
    steps.set_description("genre probabilities: full model")
    full = fit(np.arange(len(lab_idx)))
    classes = [str(c) for c in full.classes_]
    probs = np.asarray(full.predict_proba(X), dtype=np.float32)
    steps.update()
    if k >= 2:
        for i, (tr, te) in enumerate(grouped_folds(ylab, groups, n_splits=k, seed=random_state), 1):
            steps.set_description(f"genre probabilities: fold {i}/{k}")
            if len(set(ylab[tr].tolist())) < 2:
                steps.update()
                continue
            m = fit(tr)
            p = np.asarray(m.predict_proba(_rows(X, lab_idx[te])), dtype=np.float32)
            fold = np.zeros((len(te), len(classes)), dtype=np.float32)
            for j, c in enumerate(m.classes_):
                fold[:, classes.index(str(c))] = p[:, j]
            probs[lab_idx[te]] = fold
            steps.update()
    steps.close()
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
                       "settings": {k: v for k, v in kwargs.items()
                                    if k not in ("model_dir", "progress")
                                    and (k != "max_rows" or (v and len(catalog) > v))}})[:24]
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
        from ..errors import OutputError

        try:
            _save_entry(entry, out)
        except OutputError as exc:  # another build writes the same entry right now: it will be there
            log.info("genre cache entry not written: %s", exc)
    return out


def _save_entry(entry: Path, out) -> None:
    """Write one cache entry atomically: probabilities, classes and the full model."""
    with atomic_dir(entry) as tmp:
        np.save(tmp / "probs.npy", out[0], allow_pickle=False)
        (tmp / "model").mkdir()
        out[2].write_files(tmp / "model")
        write_json(tmp / "meta.json", {"classes": out[1]})
