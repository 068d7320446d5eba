"""Matrix factorisation (implicit ALS, Hu, Koren & Volinsky 2008) with folded-in users.

Fitted with the ``implicit`` library on the binary users x played-items matrix. A query context is
folded in exactly as implicit's ``recalculate_user`` does (one regularised least-squares solve
against the item factors), so new users and unseen playlists get a vector without refitting.
Items are scored by inner product: exact up to ``FLAT_MAX`` played items, an HNSW index above.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import Context, Source, SourceConfig, SourceData, load_npz_arrays, save_npz, top_n

log = logging.getLogger(__name__)

FLAT_MAX = 50_000  # played items scored exactly (about 1 ms); above, an HNSW inner-product index


@dataclass
class ALSConfig(SourceConfig):
    """implicit's ALS: factors, L2 regularisation, confidence alpha, sweeps."""

    factors: int = 64
    regularization: float = 0.01
    alpha: float = 1.0
    iterations: int = 15


class ALSSource(Source):
    """Tracks whose ALS factors match the folded-in context."""

    name = "als"
    needs_histories = True
    Config = ALSConfig
    grid = {"factors": (32, 64, 128, 256), "regularization": (0.01, 0.1, 1.0, 10.0),
            "alpha": (1.0, 5.0, 20.0)}

    def fit(self, data: SourceData) -> ALSSource:
        super().fit(data)
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        c = self.settings
        X = data.interactions.matrix()
        self.items_ = np.flatnonzero(np.diff(X.tocsc().indptr) > 0).astype(np.int64)
        if len(self.items_) < 2:
            self.Y_ = np.zeros((len(self.items_), c.factors), np.float32)
            self._prepare(data.content.n_items)
            return self
        Xc = X[:, self.items_].tocsr()
        factors = int(max(2, min(c.factors, len(self.items_) - 1)))
        # implicit's own threads do the work; BLAS threads would fight them
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(factors=factors, regularization=c.regularization,
                                            alpha=c.alpha, iterations=c.iterations,
                                            random_state=self.config.seed, calculate_training_loss=False)
            model.fit(Xc, show_progress=False)
        self.Y_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._prepare(data.content.n_items)
        return self

    def _prepare(self, n_items: int, ann=None) -> None:
        self.compact_ = np.full(n_items, -1, dtype=np.int64)
        self.compact_[self.items_] = np.arange(len(self.items_))
        Y = self.Y_.astype(np.float64)
        self.YtY_ = Y.T @ Y + self.settings.regularization * np.eye(Y.shape[1])
        self.ann_ = ann
        if ann is None and len(self.items_) > FLAT_MAX:
            import faiss

            self.ann_ = faiss.IndexHNSWFlat(self.Y_.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
            self.ann_.hnsw.efConstruction = 64
            self.ann_.add(self.Y_)
        if self.ann_ is not None:
            self.ann_.hnsw.efSearch = 128

    def user_vector(self, ctx: Context) -> np.ndarray | None:
        """The context folded in: argmin_u sum_i c_i (p_i - u.y_i)^2 + reg |u|^2
        (implicit's recalculate_user)."""
        got = ctx.cache.get(self.name)
        if got is None:
            idx = self.compact_[ctx.rows]
            idx = idx[idx >= 0]
            if len(idx) == 0 or len(self.Y_) == 0:
                got = ctx.cache[self.name] = (None,)
                return None
            Yu = self.Y_[idx].astype(np.float64)
            a = self.settings.alpha
            A = self.YtY_ + (a - 1.0) * (Yu.T @ Yu)
            b = a * Yu.sum(axis=0)
            got = ctx.cache[self.name] = (np.linalg.solve(A, b).astype(np.float32),)
        return got[0]

    def candidates(self, ctx: Context, n: int):
        u = self.user_vector(ctx)
        if u is None:
            return top_n(np.zeros(0, np.int64), np.zeros(0), n)
        want = n + len(ctx.exclude)
        if self.ann_ is not None:
            sims, ids = self.ann_.search(u[None, :], int(min(want, len(self.items_))))
            ok = ids[0] >= 0
            rows, scores = self.items_[ids[0][ok]], sims[0][ok].astype(np.float64)
        else:
            scores = self.Y_ @ u
            if want < len(scores):
                part = np.argpartition(-scores, want - 1)[:want]
            else:
                part = np.arange(len(scores))
            rows, scores = self.items_[part], scores[part].astype(np.float64)
        return top_n(rows, scores, n, ctx.exclude)

    def explain(self, ctx: Context, row: int) -> str | None:
        u = self.user_vector(ctx)
        j = self.compact_[row] if row < len(self.compact_) else -1
        if u is None or j < 0:
            return None
        return f"fits the taste of the recent tracks (ALS score {float(self.Y_[j] @ u):.2f})"

    def save(self, directory) -> None:
        save_npz(self._file(directory), {"items": self.items_, "Y": self.Y_})
        if self.ann_ is not None:
            import faiss

            faiss.write_index(self.ann_, str(Path(directory) / "source_als.faiss"))

    @classmethod
    def load(cls, directory, data: SourceData, config=None) -> ALSSource:
        self = cls(config)
        self.data_ = data
        a = load_npz_arrays(self._file(directory))
        self.items_, self.Y_ = a["items"], a["Y"]
        ann = None
        if len(self.items_) > FLAT_MAX:
            import faiss

            ann = faiss.read_index(str(Path(directory) / "source_als.faiss"))
        self._prepare(data.content.n_items, ann)
        return self

    def grow(self, data: SourceData) -> None:
        self.data_ = data
        self._prepare(data.content.n_items, self.ann_)
