"""Content neighbours: FAISS nearest tracks to each recent track and to the recency-weighted profile.

Needs no histories and reaches tracks nobody has played (cold tracks). A candidate keeps its best
cosine x the weight of the query that found it (the profile query has weight 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Context, Source, SourceConfig, top_n


@dataclass
class ContentConfig(SourceConfig):
    """FAISS neighbours per query, and whether the weighted mean of the recent tracks is a query too."""

    weight: float = 0.5
    candidates: int = 500
    neighbours: int = 50  # FAISS neighbours per recent track
    profile_query: bool = True  # also search around the weighted mean of the recent tracks


class ContentSource(Source):
    """Nearest tracks by embedding to the recent tracks and to their weighted mean."""

    name = "content"
    Config = ContentConfig

    def search(self, ctx: Context):
        """(candidate rows, strengths, query index, cosine) of the neighbour search (cached per query)."""
        got = ctx.cache.get(self.name)
        if got is not None:
            return got
        c = self.settings
        content = self.data_.content
        rows, wrow = ctx.recent(self.config.max_recent)
        Q = content.embeddings[rows]
        qw = wrow
        if c.profile_query and len(rows) > 1:
            prof = (Q * wrow[:, None].astype(np.float32)).sum(0, keepdims=True)
            nrm = float(np.linalg.norm(prof))
            if nrm > 0:
                Q = np.vstack([Q, prof / nrm])
                qw = np.r_[wrow, 1.0]
        sims, ids = content.index.search(Q, c.neighbours + len(rows))
        qi = np.repeat(np.arange(len(Q)), ids.shape[1])
        ids, sims = ids.ravel().astype(np.int64), sims.ravel().astype(np.float64)
        ok = ids >= 0
        ids, sims, qi = ids[ok], sims[ok], qi[ok]
        got = ctx.cache[self.name] = (ids, np.maximum(sims, 0) * qw[qi], qi, sims)
        return got

    def candidates(self, ctx: Context, n: int):
        ids, st, _, _ = self.search(ctx)
        if not len(ids):
            return top_n(ids, st, n)
        uniq, inv = np.unique(ids, return_inverse=True)
        best = np.zeros(len(uniq))
        np.maximum.at(best, inv, st)
        return top_n(uniq, best, n, ctx.exclude)

    def explain(self, ctx: Context, row: int) -> str | None:
        ids, st, qi, sims = self.search(ctx)
        hit = np.flatnonzero(ids == row)
        if not len(hit):
            return None
        j = hit[np.argmax(st[hit])]
        rows, _ = ctx.recent(self.config.max_recent)
        if qi[j] < len(rows):
            return f"neighbour of {self.label(rows[qi[j]])} (cos {sims[j]:.2f})"
        return f"close to the recent mix (cos {sims[j]:.2f})"
