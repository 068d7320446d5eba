"""2-D map of the catalogue from the track embeddings: UMAP (umap-learn), PCA outside 1k-200k tracks.

``auto`` fits UMAP when the catalogue has ``min_umap_tracks`` (1,000) to ``max_umap_tracks``
(200,000) tracks and PCA otherwise. Below: UMAP's numba compilation costs 10 s (idle) to 2 min (load
average 12) per process, which small indexes (most tests, toy catalogues) should not pay, and on a
few hundred tracks a linear map already shows the genre structure. Above: UMAP is fitted on a seeded
sample of ``max_fit`` (5,000) rows and the other rows are placed with the fitted transform, about
0.3-0.6 ms per row on 2 busy cores, i.e. many minutes for a million tracks. ``method = "umap"``
forces UMAP at any size (>= 4 tracks); ``method = "pca"`` forces PCA.

New rows (``add_tracks``, rows beyond the fitted sample) go through :meth:`Projection.transform`,
which is UMAP's own transform step (umap-learn's ``smooth_knn_dist``, ``compute_membership_strengths``,
``init_graph_transform`` and ``optimize_layout_euclidean`` with the fitted ``a``/``b``) over exact
neighbours among the fitted rows. It needs only the fitted rows' embeddings and positions plus the
parameters saved in ``projection.json``, so an index reopened from disk places new tracks exactly
as the in-memory model would, without pickling the UMAP object.
"""
from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import IndexFormatError, InputError
from .io import read_json, write_json, write_table

log = logging.getLogger(__name__)

METHODS = ("auto", "umap", "pca")


@dataclass
class ProjectionConfig:
    """How the 2-D map is computed (TOML: ``[engine.projection]``)."""

    method: str = "auto"  # auto | umap | pca
    min_umap_tracks: int = 1000  # auto: PCA below this many tracks (see module docstring)
    max_umap_tracks: int = 200_000  # auto: PCA above too (placing ~1M rows by transform takes many minutes)
    n_neighbors: int = 15
    min_dist: float = 0.1
    n_epochs: int = 200  # umap-learn's own choice above 10k rows; 0 = its default (500 below 10k rows)
    max_fit: int = 5_000  # UMAP fitted on at most this many rows (seeded sample); the rest transformed
    transform_epochs: int = 30  # layout epochs for transformed rows (0: weighted mean of neighbours only)
    transform_batch: int = 50_000
    seed: int = 0


class Projection:
    """Fitted 2-D projection; learned: ``method_``, ``positions_`` (n, 2), ``fitted_`` (n,), ``params_``."""

    def __init__(self, config: ProjectionConfig | None = None) -> None:
        self.config = config or ProjectionConfig()

    @property
    def method(self) -> str:
        """``pca`` or ``umap``: the method that placed the points."""
        return self.method_

    @property
    def positions(self) -> np.ndarray:
        """(n, 2) float32 map position of every row."""
        return self.positions_

    @property
    def fitted(self) -> np.ndarray:
        """Which rows the projection was fitted on (the rest were placed by :meth:`extend`)."""
        return self.fitted_

    # ------------------------------------------------------------------ fit
    def fit(self, X: np.ndarray) -> Projection:
        """Project every row of ``X`` (L2-normalised embeddings) to 2-D."""
        c = self.config
        if c.method not in METHODS:
            raise InputError(f"unknown projection method {c.method!r} (choose from {', '.join(METHODS)})")
        X = np.ascontiguousarray(X, dtype=np.float32)
        n = len(X)
        t0 = time.perf_counter()
        method = c.method
        if method == "auto":
            method = "umap" if c.min_umap_tracks <= n <= c.max_umap_tracks else "pca"
        if method == "umap" and n < 4:
            method = "pca"  # UMAP needs a neighbour graph: with < 4 rows there is none
        self.method_ = method
        if method == "pca":
            self._fit_pca(X)
        else:
            self._fit_umap(X)
        self.fit_seconds_ = round(time.perf_counter() - t0, 3)
        log.info("2-D map: %s over %d tracks in %.1f s", method, n, self.fit_seconds_)
        return self

    def _fit_pca(self, X: np.ndarray) -> None:
        mean = X.mean(axis=0) if len(X) else np.zeros(X.shape[1], np.float32)
        comps = np.zeros((2, X.shape[1]), dtype=np.float32)
        if len(X) >= 2:
            _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
            comps[: min(2, len(vt))] = vt[:2]
            # deterministic sign: the largest loading of each component is positive
            signs = np.sign(comps[np.arange(2), np.abs(comps).argmax(axis=1)])
            comps *= np.where(signs == 0, 1, signs)[:, None]
        self.mean_, self.components_ = mean.astype(np.float32), comps
        self.positions_ = self._pca(X)
        self.fitted_ = np.ones(len(X), dtype=bool)
        self.params_ = {}

    def _pca(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean_) @ self.components_.T).astype(np.float32)

    def _fit_umap(self, X: np.ndarray) -> None:
        c = self.config
        n = len(X)
        rng = np.random.default_rng(c.seed)
        fit_rows = np.sort(rng.choice(n, size=c.max_fit, replace=False)) if n > c.max_fit else np.arange(n)
        k = int(max(2, min(c.n_neighbors, len(fit_rows) - 1)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", spectral-init notes
            import umap

            model = umap.UMAP(n_neighbors=k, min_dist=c.min_dist, n_components=2, metric="euclidean",
                              n_epochs=c.n_epochs or None, random_state=c.seed,
                              init="spectral" if len(fit_rows) > k + 1 else "random")
            Y = model.fit_transform(X[fit_rows])
        self.params_ = {"n_neighbors": k, "min_dist": c.min_dist, "metric": "euclidean",
                        "a": float(model._a), "b": float(model._b), "n_epochs": c.n_epochs or None,
                        "local_connectivity": float(model.local_connectivity),
                        "repulsion_strength": float(model.repulsion_strength),
                        "negative_sample_rate": int(model.negative_sample_rate),
                        "initial_alpha": float(model._initial_alpha), "seed": c.seed,
                        "umap_learn": getattr(umap, "__version__", "?")}
        pos = np.zeros((n, 2), dtype=np.float32)
        pos[fit_rows] = Y
        self.fitted_ = np.zeros(n, dtype=bool)
        self.fitted_[fit_rows] = True
        self.positions_ = pos
        rest = np.flatnonzero(~self.fitted_)
        if len(rest):
            self.positions_[rest] = self.transform(X[rest], reference=X[fit_rows])

    # ------------------------------------------------------------------ transform
    def transform(self, X: np.ndarray, *, reference: np.ndarray | None = None) -> np.ndarray:
        """Positions of new rows; UMAP needs ``reference``: the fitted rows' embeddings (``fitted_``)."""
        X = np.ascontiguousarray(np.atleast_2d(X), dtype=np.float32)
        if len(X) == 0:
            return np.zeros((0, 2), dtype=np.float32)
        if self.method_ == "pca":
            return self._pca(X)
        if reference is None:
            raise ValueError("UMAP transform needs the fitted rows' embeddings (reference=)")
        ref_pos = self.positions_[self.fitted_]
        if len(reference) != len(ref_pos):
            raise IndexFormatError(f"map: {len(reference)} reference rows, {len(ref_pos)} fitted positions")
        b = max(1, int(self.config.transform_batch))
        ref = np.ascontiguousarray(reference, np.float32)
        return np.vstack([self._umap_transform(X[i:i + b], ref, ref_pos)
                          for i in range(0, len(X), b)])

    def _umap_transform(self, X: np.ndarray, ref: np.ndarray, ref_pos: np.ndarray) -> np.ndarray:
        """umap-learn's ``UMAP.transform`` steps with the saved parameters (see the module docstring)."""
        import faiss
        import scipy.sparse
        from umap.umap_ import (
            compute_membership_strengths,
            init_graph_transform,
            make_epochs_per_sample,
            optimize_layout_euclidean,
            smooth_knn_dist,
        )

        p = self.params_
        k = int(min(p["n_neighbors"], len(ref)))
        idx = faiss.IndexFlatL2(ref.shape[1])
        idx.add(ref)
        d2, indices = idx.search(X, k)
        dists = np.sqrt(np.maximum(d2, 0)).astype(np.float32, order="C")
        indices = indices.astype(np.int32)
        sigmas, rhos = smooth_knn_dist(dists, float(k),
                                       local_connectivity=max(0.0, p["local_connectivity"] - 1.0))
        rows, cols, vals, _ = compute_membership_strengths(indices, dists, sigmas, rhos, bipartite=True)
        graph = scipy.sparse.coo_matrix((vals, (rows, cols)), shape=(len(X), len(ref)))
        csr = graph.tocsr()
        csr.eliminate_zeros()
        emb = init_graph_transform(csr, ref_pos.astype(np.float32))
        # a row whose neighbours all have zero membership keeps NaN: place it on its nearest neighbour
        bad = ~np.isfinite(emb).all(axis=1)
        emb[bad] = ref_pos[indices[bad, 0]]
        n_epochs = int(self.config.transform_epochs)
        if graph.nnz and n_epochs > 0:
            graph.data[graph.data < graph.data.max() / float(n_epochs)] = 0.0
            graph.eliminate_zeros()
            eps = make_epochs_per_sample(graph.data, n_epochs)
            rng = np.random.RandomState(p.get("seed", 0))
            rng_state = rng.randint(-2**31 + 1, 2**31 - 1, 3).astype(np.int64)
            emb = optimize_layout_euclidean(
                np.ascontiguousarray(emb, dtype=np.float32), ref_pos.astype(np.float32, copy=True), graph.row,
                graph.col, n_epochs, len(ref), eps, p["a"], p["b"], rng_state, p["repulsion_strength"],
                p["initial_alpha"] / 4.0, p["negative_sample_rate"], False)
        return np.asarray(emb, dtype=np.float32)

    def extend(self, X_new: np.ndarray, *, reference: np.ndarray | None = None) -> np.ndarray:
        """Place new rows with :meth:`transform` and append them (not fitted) to ``positions_``."""
        pos = self.transform(X_new, reference=reference)
        self.positions_ = np.vstack([self.positions_, pos]).astype(np.float32)
        self.fitted_ = np.concatenate([self.fitted_, np.zeros(len(pos), dtype=bool)])
        return pos

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-able method, parameters and config (positions are saved separately, in map.parquet)."""
        d: dict[str, Any] = {"method": self.method_, "params": self.params_, "config": asdict(self.config),
                             "fit_seconds": getattr(self, "fit_seconds_", None),
                             "n_fitted": int(self.fitted_.sum())}
        if self.method_ == "pca":
            d["mean"] = self.mean_.tolist()
            d["components"] = self.components_.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], positions: np.ndarray, fitted: np.ndarray) -> Projection:
        """Rebuild from :meth:`to_dict` output and the saved positions / fitted flags."""
        try:
            cfg = ProjectionConfig(**d.get("config", {}))
            self = cls(cfg)
            self.method_ = d["method"]
            self.params_ = dict(d.get("params") or {})
            if self.method_ == "pca":
                self.mean_ = np.asarray(d["mean"], dtype=np.float32)
                self.components_ = np.asarray(d["components"], dtype=np.float32)
            elif self.method_ != "umap":
                raise ValueError(f"unknown method {self.method_!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"projection.json: unusable map parameters ({exc})") from None
        self.fit_seconds_ = d.get("fit_seconds")
        self.positions_ = np.asarray(positions, dtype=np.float32).reshape(-1, 2)
        self.fitted_ = np.asarray(fitted, dtype=bool)
        return self


def save_map(projection: Projection, track_ids, directory) -> None:
    """Write ``map.parquet`` (track_id, x, y, fitted) and ``projection.json`` (method and parameters)."""
    d = Path(directory)
    pos = projection.positions_
    if len(pos) != len(track_ids):
        raise ValueError(f"map has {len(pos)} positions for {len(track_ids)} tracks")
    write_table(pd.DataFrame({"track_id": pd.array([str(t) for t in track_ids], dtype="string"),
                              "x": pos[:, 0], "y": pos[:, 1], "fitted": projection.fitted_}),
                d / "map.parquet")
    write_json(d / "projection.json", projection.to_dict())


def load_map(directory, track_ids) -> Projection | None:
    """Read the map saved by :func:`save_map`; None when the index has none (built before maps existed)."""
    d = Path(directory)
    if not (d / "map.parquet").exists():
        return None
    try:
        table = pd.read_parquet(d / "map.parquet")
    except Exception as exc:  # pyarrow errors
        raise IndexFormatError(f"{d / 'map.parquet'}: unreadable ({type(exc).__name__})") from None
    if len(table) != len(track_ids) or not (table["track_id"].astype(str).to_numpy() == np.asarray(track_ids,
                                                                                               dtype=str)).all():
        raise IndexFormatError(f"{d / 'map.parquet'}: rows do not match tracks.parquet")
    meta = read_json(d / "projection.json", what="map parameters", error=IndexFormatError)
    return Projection.from_dict(meta, table[["x", "y"]].to_numpy(dtype=np.float32),
                                table["fitted"].to_numpy(dtype=bool))
