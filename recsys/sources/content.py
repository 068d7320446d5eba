"""Content neighbours: FAISS nearest tracks to each recent track and to the recency-weighted profile.

Needs no histories and reaches tracks nobody has played (cold tracks). A candidate keeps its best
cosine x the weight of the query that found it (the profile query has weight 1).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .base import Context, Source, SourceConfig, best_per_key, max_per_row, member, per_row, top_n


@dataclass
class ContentConfig(SourceConfig):
    """FAISS neighbours per query, and whether the weighted mean of the recent tracks is a query too."""

    weight: float = 0.5
    candidates: int = 500
    neighbours: int = 50  # FAISS neighbours per recent track
    profile_query: bool = True  # also search around the weighted mean of the recent tracks
    # FAISS answers kept per (recent track, neighbours asked), least recently used dropped first; 0 = none.
    # A track's answer never changes while the index does not, and popular tracks recur across requests.
    cache: int = 20_000


class NeighbourCache:
    """A bounded, thread-safe LRU of FAISS answers (similarities, ids) per (row, k, index size)."""

    def __init__(self, size: int) -> None:
        self.size = max(0, int(size))
        self.entries: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray] | None:
        with self.lock:
            got = self.entries.pop(key, None)
            if got is None:
                self.misses += 1
                return None
            self.entries[key] = got  # most recently used last
            self.hits += 1
            return got

    def put(self, key: tuple[int, int, int], value: tuple[np.ndarray, np.ndarray]) -> None:
        if not self.size:
            return
        with self.lock:
            self.entries[key] = value
            while len(self.entries) > self.size:
                del self.entries[next(iter(self.entries))]


class ContentSource(Source):
    """Nearest tracks by embedding to the recent tracks and to their weighted mean."""

    name = "content"
    Config = ContentConfig

    def fit(self, data) -> ContentSource:
        super().fit(data)
        self.cache_ = NeighbourCache(self.settings.cache)
        return self

    def resize_cache(self, size: int) -> None:
        """Keep at most ``size`` FAISS answers from now on (0: none, every query searched; benchmarks)."""
        self.cache_ = NeighbourCache(size)

    def neighbours(self, rows: np.ndarray, extra: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's (similarities, ids) for the embeddings of ``rows`` and then the ``extra`` query vectors,
        as one ``search`` of them all would answer: each query's answer is its own, so the rows' answers
        are taken from the cache and only the others searched (one call, fewer than FAISS's BLAS
        threshold of 20 queries: the same per-query scan). On an exact (flat) index every track's answer
        is asked and kept at the longest length a context needs (``neighbours`` + ``max_recent``) and cut
        to ``k``, so contexts of different lengths share it."""
        index = self.data_.content.index
        k, size = int(min(k, index.ntotal)), int(index.ntotal)
        ask = k
        if index.kind == "flat":  # one answer per track: exact top-k lists are prefixes of longer ones
            ask = int(min(max(k, self.settings.neighbours + self.config.max_recent), size))
        keys = [(r, ask, size) for r in rows.tolist()]
        got = [self.cache_.get(key) for key in keys] if self.cache_.size else [None] * len(keys)
        miss = [i for i, g in enumerate(got) if g is None]
        if miss or len(extra):
            Q = self.data_.content.embeddings[rows[miss]]
            if len(extra):
                Q = np.vstack([Q, extra]) if len(miss) else extra
            sims, ids = index.search(Q, ask)
            for j, i in enumerate(miss):
                got[i] = (sims[j], ids[j])
                self.cache_.put(keys[i], got[i])
            got += [(sims[j], ids[j]) for j in range(len(miss), len(Q))]
        return np.vstack([g[0][:k] for g in got]), np.vstack([g[1][:k] for g in got])

    def search(self, ctx: Context):
        """(candidate rows, strengths, query index, cosine) of the neighbour search (cached per query)."""
        got = ctx.cache.get(self.name)
        if got is not None:
            return got
        c = self.settings
        content = self.data_.content
        rows, wrow = ctx.recent(self.config.max_recent)
        Q = content.embeddings[rows]
        qw, extra = wrow, Q[:0]
        if c.profile_query and len(rows) > 1:
            prof = (Q * wrow[:, None].astype(np.float32)).sum(0, keepdims=True)
            nrm = float(np.linalg.norm(prof))
            if nrm > 0:
                extra = prof / nrm
                qw = np.append(wrow, 1.0)
        sims, ids = self.neighbours(rows, extra, c.neighbours + len(rows))
        qi = np.repeat(np.arange(len(qw)), ids.shape[1])
        ids, sims = ids.ravel().astype(np.int64), sims.ravel().astype(np.float64)
        ok = ids >= 0
        ids, sims, qi = ids[ok], sims[ok], qi[ok]
        got = ctx.cache[self.name] = (ids, np.maximum(sims, 0) * qw[qi], qi, sims)
        return got

    def candidates(self, ctx: Context, n: int):
        ids, st, _, _ = self.search(ctx)
        if not len(ids):
            return top_n(ids, st, n)
        uniq, best = max_per_row(ids, st)
        return top_n(uniq, best, n, ctx.exclude)

    def explain_many(self, ctx: Context, rows: np.ndarray) -> list[str | None]:
        """Per row, the query that found it with the largest strength (the first such hit)."""
        ids, st, qi, sims = self.search(ctx)
        sel = np.flatnonzero(member(ids, rows, self.data_.content.n_items))
        best = {r: int(sel[j]) for r, j in best_per_key(ids[sel], st[sel]).items()}
        recent, _ = ctx.recent(self.config.max_recent)
        return per_row(rows, best, lambda j: f"neighbour of {self.label(recent[qi[j]])} (cos {sims[j]:.2f})"
                       if qi[j] < len(recent) else f"close to the recent mix (cos {sims[j]:.2f})")
