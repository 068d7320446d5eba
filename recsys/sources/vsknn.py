"""Session kNN (V-SKNN, Ludewig & Jannach 2018): the training histories most like the context vote.

The context is weighted by recency (``vsknn_weighting``: linear, most recent 1, oldest 1/L; div, 1/i;
same, 1); a training history h
scores sim(h) = sum of the weights of the context tracks it contains / sqrt(|h|). The ``vsknn_k``
most similar histories vote for their tracks with their similarity.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import (
    Context,
    Source,
    SourceConfig,
    SourceData,
    csr_arrays,
    csr_from,
    gather,
    load_npz_arrays,
    member,
    resize_csr,
    row_parts,
    save_npz,
    top_n,
)


@dataclass
class VSKNNConfig(SourceConfig):
    """V-SKNN: how many neighbouring histories vote, and how a context track's age weighs."""

    k: int = 50  # neighbouring histories that vote
    weighting: str = "linear"  # weight of the i-th most recent context track: linear | div | same


class VSKNNSource(Source):
    """Neighbouring histories of the recency-weighted context vote for their tracks."""

    name = "vsknn"
    needs_histories = True
    Config = VSKNNConfig
    grid = {"k": (25, 50, 100, 200, 500), "weighting": ("linear", "div", "same")}

    def fit(self, data: SourceData) -> VSKNNSource:
        super().fit(data)
        self.X_ = data.interactions.matrix()
        self._prepare()
        return self

    def _prepare(self) -> None:
        self.XT_ = self.X_.T.tocsr()
        self.norm_ = 1.0 / np.sqrt(np.maximum(np.diff(self.X_.indptr), 1)).astype(np.float64)

    def neighbours(self, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """(history ids, similarities) of the most similar training histories (cached per query)."""
        got = ctx.cache.get(self.name)
        if got is None:
            L = len(ctx.rows)
            how = self.settings.weighting
            w = ((L - np.arange(L)) / L if how == "linear" else 1.0 / (1.0 + np.arange(L)) if how == "div"
                 else np.ones(L))
            users, dot = gather(self.XT_, ctx.rows, w)
            sims = dot * self.norm_[users] if len(users) else dot
            users, sims = top_n(users, sims, self.settings.k)
            got = ctx.cache[self.name] = (users, sims)
        return got

    def candidates(self, ctx: Context, n: int):
        users, sims = self.neighbours(ctx)
        idx, val = gather(self.X_, users, sims)
        return top_n(idx, val, n, ctx.exclude)

    def explain_many(self, ctx: Context, rows: np.ndarray) -> list[str | None]:
        """Per row, how many of the neighbouring histories hold it."""
        users, _ = self.neighbours(ctx)
        which, holders, _ = row_parts(self.XT_, rows)
        c = np.bincount(which[member(holders, users, self.X_.shape[0])], minlength=len(rows))
        return [f"in {n} of the {len(users)} most similar histories" if n else None for n in c.tolist()]

    def save(self, directory) -> None:
        save_npz(self._file(directory), csr_arrays("X", self.X_))

    @classmethod
    def load(cls, directory, data: SourceData, config=None) -> VSKNNSource:
        self = cls(config)
        self.data_ = data
        self.X_ = csr_from(load_npz_arrays(self._file(directory)), "X")
        self._prepare()
        return self

    def grow(self, data: SourceData) -> None:
        self.data_ = data
        self.X_ = resize_csr(self.X_, (self.X_.shape[0], data.content.n_items))
        self._prepare()
