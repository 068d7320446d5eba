"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"): closed-form item-item regression.

B = argmin |X - XB|^2 + lambda |B|^2 with diag(B) = 0 has the closed form P = (X'X + lambda I)^-1,
B = -P / diag(P) (columns), diag 0. Dense over the played items (at most ``max_items``, the most
played ones beyond). A candidate scores sum_r w_r B[r, c] over the recent rows r (recency weights).
Saved as two ``.npy`` files (the item rows and B), no pickle.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import Context, Source, SourceConfig, SourceData, top_n


def ease_weights(X, lam: float) -> np.ndarray:
    """Steck's closed form over the columns of the binary users x items matrix ``X`` (float32 result).

    P = (X'X + lambda I)^-1 by a float32 Cholesky factorisation (LAPACK potrf + potri): the Gram
    matrix is symmetric positive definite, and this costs a quarter of a float64 LU inverse."""
    from scipy.linalg import lapack

    XtX = X.T @ X
    G = np.asarray(XtX.todense(), dtype=np.float32)
    G[np.diag_indices_from(G)] += lam
    c, info = lapack.spotrf(G, lower=1, overwrite_a=1, clean=0)
    if info == 0:
        P, info = lapack.spotri(c, lower=1, overwrite_c=1)
    if info != 0:  # not positive definite in float32 (a tiny lambda): the general inverse
        G = np.asarray(XtX.todense(), dtype=np.float64)
        G[np.diag_indices_from(G)] += lam
        P = np.linalg.inv(G)
    else:
        P = np.tril(P) + np.tril(P, -1).T  # potri fills the lower triangle only
    B = P / (-np.diag(P))
    B[np.diag_indices_from(B)] = 0.0
    return B.astype(np.float32, copy=False)


@dataclass
class EASEConfig(SourceConfig):
    """EASE: the L2 regularisation and how many of the most played items the dense model covers."""

    lam: float = 200.0  # lambda, the L2 regularisation
    # its cost grows as the cube: 8,000 items take ~3 s a fit on 2 cores (float32 Cholesky), 20,000 about
    # 45 s and 1.6 GB per copy
    max_items: int = 8_000


class EASESource(Source):
    """Tracks the closed-form item-item regression predicts from the recent tracks."""

    name = "ease"
    needs_histories = True
    Config = EASEConfig
    grid = {"lam": (10.0, 50.0, 200.0, 500.0, 2000.0)}

    def fit(self, data: SourceData) -> EASESource:
        super().fit(data)
        X = data.interactions.matrix()
        counts = np.asarray(X.sum(axis=0)).ravel()
        played = np.flatnonzero(counts > 0)
        if len(played) > self.settings.max_items:
            top = np.lexsort((played, -counts[played]))[: self.settings.max_items]
            played = np.sort(played[top])
        self.items_ = played.astype(np.int64)
        if len(self.items_) == 0:
            self.B_ = np.zeros((0, 0), np.float32)
        else:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(2, "blas"):
                self.B_ = ease_weights(X[:, self.items_].tocsc(), float(self.settings.lam))
        self._prepare(data.content.n_items)
        return self

    def _prepare(self, n_items: int) -> None:
        self.compact_ = np.full(n_items, -1, dtype=np.int64)
        self.compact_[self.items_] = np.arange(len(self.items_))

    def scores(self, ctx: Context) -> np.ndarray | None:
        """Scores over ``items_`` for the context (cached per query), None when no recent row is known."""
        got = ctx.cache.get(self.name)
        if got is None:
            idx = self.compact_[ctx.rows]
            ok = idx >= 0
            s = None
            if ok.any():
                s = ctx.weights[ok].astype(np.float32) @ self.B_[idx[ok]]
            got = ctx.cache[self.name] = (s,)
        return got[0]

    def candidates(self, ctx: Context, n: int):
        s = self.scores(ctx)
        if s is None:
            return top_n(np.zeros(0, np.int64), np.zeros(0), n)
        want = min(n + len(ctx.exclude), len(s))
        part = np.argpartition(-s, want - 1)[:want] if want < len(s) else np.arange(len(s))
        return top_n(self.items_[part], s[part].astype(np.float64), n, ctx.exclude)

    def explain_many(self, ctx: Context, rows: np.ndarray) -> list[str | None]:
        """Per row, the recent track with the largest weighted EASE weight toward it."""
        rows = np.asarray(rows, dtype=np.int64)
        out: list[str | None] = [None] * len(rows)
        idx = self.compact_[ctx.rows]
        ok = idx >= 0
        js = np.where(rows < len(self.compact_), self.compact_[np.minimum(rows, len(self.compact_) - 1)], -1)
        cols = np.flatnonzero(js >= 0)
        if not ok.any() or not len(cols):
            return out
        W = self.B_[np.ix_(idx[ok], js[cols])]
        contrib = ctx.weights[ok][:, None] * W
        best = np.argmax(contrib, axis=0)
        recent = ctx.rows[ok]
        for i, (c, b) in enumerate(zip(cols.tolist(), best.tolist())):
            if contrib[b, i] > 0:
                out[c] = f"predicted from {self.label(recent[b])} (EASE weight {float(W[b, i]):.3f})"
        return out

    def _paths(self, directory) -> tuple[Path, Path]:
        d = Path(directory)
        return d / "source_ease_items.npy", d / "source_ease.npy"

    def save(self, directory) -> None:
        from ..io import atomic_path

        for path, arr in zip(self._paths(directory), (self.items_, self.B_)):
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.save(f, arr, allow_pickle=False)

    @classmethod
    def load(cls, directory, data: SourceData, config=None) -> EASESource:
        from ..io import read_npy

        self = cls(config)
        self.data_ = data
        items, B = (read_npy(p) for p in self._paths(directory))
        self.items_, self.B_ = items.astype(np.int64), B.astype(np.float32, copy=False)
        if self.B_.shape != (len(self.items_), len(self.items_)):
            from ..errors import IndexFormatError

            raise IndexFormatError(f"{directory}: source_ease.npy does not match source_ease_items.npy")
        self._prepare(data.content.n_items)
        return self

    def grow(self, data: SourceData) -> None:
        self.data_ = data
        self._prepare(data.content.n_items)
