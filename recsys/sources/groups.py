"""Group sources over catalogue metadata: same artist, same album, same cluster; and plain popularity.

Each proposes the most-played (then most popular in the catalogue) members of the groups of the
recent tracks. Artist/album/cluster need no histories and reach tracks nobody has played.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Context, Source, SourceConfig, SourceData, log_scaled, max_per_row, top_n


@dataclass
class GroupConfig(SourceConfig):
    """A group source: how many members it takes from each recent track's group."""

    weight: float = 0.5
    candidates: int = 500
    per_group: int = 20  # most popular / most played members taken per recent group


@dataclass
class AlbumConfig(GroupConfig):
    """Same album: a smaller blend weight than same artist."""

    weight: float = 0.3


@dataclass
class ClusterConfig(GroupConfig):
    """Same k-means cluster: a small blend weight, more members per group."""

    weight: float = 0.15
    per_group: int = 30


def prior(data: SourceData) -> np.ndarray:
    """Play counts (log-scaled to 0..1), averaged with catalogue popularity (0..100) when known."""
    p = log_scaled(data.popularity)
    cp = data.content.catalog_popularity
    if cp is not None:
        p = 0.5 * p + 0.5 * np.clip(np.nan_to_num(np.asarray(cp, dtype=np.float64), nan=0.0) / 100.0, 0, 1)
    return p


def top_members(codes: np.ndarray, score: np.ndarray, n_top: int) -> dict[int, np.ndarray]:
    """Per group code, its members by ``score`` (best first), trimmed to ``n_top``."""
    n_top = max(n_top, 1)
    order = np.lexsort((np.arange(len(codes)), -score, codes))
    order = order[codes[order] >= 0]
    if len(order) == 0:
        return {}
    cl = codes[order]
    starts = np.flatnonzero(np.r_[True, cl[1:] != cl[:-1]])
    ends = np.r_[starts[1:], len(order)]
    return {int(cl[s]): order[s:min(e, s + n_top)] for s, e in zip(starts, ends)}


class GroupSource(Source):
    """Members of the recent tracks' groups (codes per row), scored by shared weight and prior."""

    key = "artist"
    Config = GroupConfig

    def codes(self, data: SourceData) -> np.ndarray | None:
        return data.content.meta.get(self.key)

    def budget(self) -> int:
        return self.settings.per_group

    def fit(self, data: SourceData) -> GroupSource:
        super().fit(data)
        self.prior_ = prior(data)
        codes = self.codes(data)
        self.codes_ = None if codes is None else np.asarray(codes)
        self.top_ = {} if codes is None else top_members(self.codes_, self.prior_, self.budget())
        return self

    def shared(self, ctx: Context) -> dict[int, tuple[float, int]]:
        """Group code -> (summed recency weight of the recent tracks in it, most recent such track)."""
        key = f"{self.name}:shared"
        if key in ctx.cache:
            return ctx.cache[key]
        out: dict[int, tuple[float, int]] = ctx.cache.setdefault(key, {})
        if self.codes_ is None:
            return out
        rows, w = ctx.recent(self.config.max_recent)
        for r, wr in zip(rows.tolist(), w.tolist()):
            code = int(self.codes_[r])
            if code >= 0:
                tot, first = out.get(code, (0.0, r))
                out[code] = (tot + wr, first)
        return out

    def strength(self, tot: float, members: np.ndarray) -> np.ndarray:
        return min(tot, 1.0) * (0.5 + 0.5 * self.prior_[members])

    def candidates(self, ctx: Context, n: int):
        cand, st = [], []
        for code, (tot, _) in self.shared(ctx).items():
            members = self.top_.get(code)
            if members is not None and len(members):
                cand.append(members)
                st.append(self.strength(tot, members))
        if not cand:
            return top_n(np.zeros(0, np.int64), np.zeros(0), n)
        rows, s = np.concatenate(cand).astype(np.int64), np.concatenate(st)
        uniq, best = max_per_row(rows, s)
        return top_n(uniq, best, n, ctx.exclude)

    def explain(self, ctx: Context, row: int) -> str | None:
        if self.codes_ is None or row >= len(self.codes_):
            return None
        got = self.shared(ctx).get(int(self.codes_[row]))
        return None if got is None else f"same {self.key} as {self.label(got[1])}"


class ArtistSource(GroupSource):
    """Most popular tracks by the artists just played."""

    name = "artist"
    key = "artist"


class AlbumSource(GroupSource):
    """Most popular tracks of the albums just played."""

    name = "album"
    key = "album"
    Config = AlbumConfig


class ClusterSource(GroupSource):
    """Most-played members of the recent tracks' k-means clusters (decreasing with rank)."""

    name = "cluster"
    key = "cluster"
    Config = ClusterConfig

    def codes(self, data: SourceData) -> np.ndarray:
        return data.content.clusters

    def shared(self, ctx: Context) -> dict[int, tuple[float, int]]:
        key = f"{self.name}:shared"
        if key in ctx.cache:
            return ctx.cache[key]
        out: dict[int, tuple[float, int]] = ctx.cache.setdefault(key, {})
        rows, w = ctx.recent(self.config.max_recent)
        for r, wr in zip(rows.tolist(), w.tolist()):
            code = int(self.codes_[r])
            tot, first = out.get(code, (0.0, r))
            out[code] = (max(tot, wr), first)
        return out

    def strength(self, tot: float, members: np.ndarray) -> np.ndarray:
        return tot * (1.0 - np.arange(len(members)) / (2.0 * len(members)))

    def explain(self, ctx: Context, row: int) -> str | None:
        got = self.shared(ctx).get(int(self.codes_[row]))
        return None if got is None else f"same cluster {int(self.codes_[row])} as {self.label(got[1])}"


class PopularSource(Source):
    """The most-played tracks (the popularity baseline; a fallback candidate source)."""

    name = "popular"
    needs_histories = True

    def fit(self, data: SourceData) -> PopularSource:
        super().fit(data)
        pop = np.asarray(data.popularity, dtype=np.float64)
        order = np.lexsort((np.arange(len(pop)), -pop))
        self.order_ = order[pop[order] > 0][:1000]
        self.score_ = log_scaled(pop)[self.order_]
        return self

    def candidates(self, ctx: Context, n: int):
        m = min(len(self.order_), n + len(ctx.exclude))
        return top_n(self.order_[:m], self.score_[:m], n, ctx.exclude)

    def explain(self, ctx: Context, row: int) -> str | None:
        return f"popular ({int(self.data_.popularity[row])} plays)"
