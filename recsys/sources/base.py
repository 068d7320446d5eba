"""The recommender interface every source, the hybrid and the evaluation baselines share.

``Recommender``: ``recommend(recent, k)``, ``similar_items(row, k)``, ``save(dir)``, ``load(dir, data)``
(implicit-style, over catalogue rows). ``Source`` adds ``fit(data)``, ``candidates(ctx, n)`` (unique
rows, best first) and ``explain(ctx, row)`` (one reason string, formatted only for shown tracks).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError
from ..io import read_npy as load_npz_arrays  # noqa: F401  (the one numpy reader; sources import it here)
from ..recommend import RecommendConfig

EMPTY_I = np.zeros(0, dtype=np.int64)
EMPTY_F = np.zeros(0, dtype=np.float64)


def log_scaled(plays: np.ndarray) -> np.ndarray:
    """Play counts on a log scale from 0 to 1 (the most played track is 1): the one popularity prior."""
    plays = np.asarray(plays, dtype=np.float64)
    return np.log1p(plays) / max(np.log1p(plays.max()) if len(plays) else 0.0, 1e-9)


@dataclass
class Content:
    """What content sources read: embeddings, FAISS index, clusters, metadata codes, catalogue priors."""

    embeddings: np.ndarray
    index: object  # recsys.index.TrackIndex
    clusters: np.ndarray
    labels: np.ndarray  # track id per row (for reasons)
    meta: dict[str, np.ndarray] = field(default_factory=dict)  # "artist"/"album" -> code per row (-1 unknown)
    catalog_popularity: np.ndarray | None = None  # 0..100 or NaN
    # (n, len(AUDIO_STATS)) audio statistics (NaN unknown), for ranker features
    stats: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return len(self.embeddings)


@dataclass
class Interactions:
    """Training plays as catalogue rows, sorted by user then position (skipped plays removed)."""

    users: np.ndarray  # user code per play, 0..n_users-1
    items: np.ndarray  # catalogue row per play
    n_users: int
    n_items: int
    user_ids: np.ndarray  # user id per code
    sessions: np.ndarray | None = None  # session per play when the histories have one (rule transactions)

    @classmethod
    def from_histories(cls, h: pd.DataFrame, row_of: dict[str, int], n_items: int) -> Interactions:
        """From a histories table (ids unknown to ``row_of`` must already be dropped)."""
        if "skipped" in h.columns:
            h = h[~h["skipped"].astype(bool)]
        h = h.sort_values(["user_id", "position"], kind="stable")
        codes, uniq = pd.factorize(h["user_id"].astype(str), sort=False)
        items = h["track_id"].map(row_of).to_numpy(dtype=np.int64)
        sessions = h["session"].astype(str).to_numpy(dtype=object) if "session" in h.columns else None
        return cls(codes.astype(np.int64), items, len(uniq), n_items, np.asarray(uniq, dtype=object),
                   sessions)

    def subset(self, keep: np.ndarray) -> Interactions:
        """The plays where ``keep`` is True (same user codes and catalogue)."""
        return Interactions(self.users[keep], self.items[keep], self.n_users, self.n_items, self.user_ids,
                            None if self.sessions is None else self.sessions[keep])

    def to_histories(self, labels: np.ndarray) -> pd.DataFrame:
        """Back to a histories table (user_id, position, track_id [, session])
        with ``labels`` as track ids."""
        df = pd.DataFrame({"user_id": self.user_ids[self.users], "position": np.arange(len(self.items)),
                           "track_id": np.asarray(labels, dtype=object)[self.items]})
        if self.sessions is not None:
            df["session"] = self.sessions
        return df

    def matrix(self) -> sp.csr_matrix:
        """Binary users x items CSR (float32)."""
        X = sp.csr_matrix((np.ones(len(self.items), np.float32), (self.users, self.items)),
                          shape=(self.n_users, self.n_items))
        X.sum_duplicates()
        X.data[:] = 1.0
        return X

    def popularity(self) -> np.ndarray:
        """Plays per catalogue row."""
        return np.bincount(self.items, minlength=self.n_items).astype(np.float64)

    def starts(self) -> np.ndarray:
        """Index of each user's first play, plus len (users without plays are empty ranges)."""
        return np.searchsorted(self.users, np.arange(self.n_users + 1))


@dataclass
class SourceData:
    """Everything a source may be fitted on: content and the training plays (or None)."""

    content: Content
    interactions: Interactions | None = None
    popularity: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.popularity is None:
            self.popularity = (self.interactions.popularity() if self.interactions is not None
                               else np.zeros(self.content.n_items))


@dataclass
class Context:
    """One query: the given plays, their distinct rows (most recent first) with recency weights."""

    seq: np.ndarray  # given rows, oldest first
    rows: np.ndarray  # distinct rows, most recent first
    weights: np.ndarray  # decay ** age of each distinct row
    exclude: np.ndarray  # sorted rows never returned
    cache: dict = field(default_factory=dict)  # per-query intermediate results shared by candidates/explain

    @property
    def last(self) -> int:
        return int(self.rows[0])

    def recent(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The n most recent distinct rows and their weights."""
        return self.rows[:n], self.weights[:n]


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` by a sort and a mask: the same array, 3-4x faster on the few thousand rows of
    a query (numpy's hash-based unique costs ~170 us on 2,500 of them)."""
    s = np.sort(values)
    return s[np.concatenate(([True], s[1:] != s[:-1]))] if len(s) else s


def make_context(recent: Sequence[int], config: RecommendConfig, *, exclude=None) -> Context:
    """Context from catalogue rows (oldest first); the last ``max_context`` plays are kept."""
    seq = np.asarray([int(r) for r in recent], dtype=np.int64)[-max(1, config.max_context):]
    if len(seq) == 0:
        raise InputError("a recommendation needs at least one recent track")
    rev = seq[::-1]
    rows, first = np.unique(rev, return_index=True)
    order = np.argsort(first)
    rows = rows[order]
    weights = config.recency_decay ** np.arange(len(rows), dtype=np.float64)
    never = seq if exclude is None else np.concatenate((seq, np.fromiter(exclude, dtype=np.int64)))
    return Context(seq, rows, weights, sorted_unique(never))


def top_n(rows: np.ndarray, scores: np.ndarray, n: int, exclude: np.ndarray | None = None,
          ) -> tuple[np.ndarray, np.ndarray]:
    """The n best (rows, scores) by score then row, excluding ``exclude`` and non-positive scores."""
    ok = scores > 0
    if exclude is not None and len(exclude):  # exclude is sorted (Context.exclude): binary search
        pos = np.minimum(np.searchsorted(exclude, rows), len(exclude) - 1)
        ok &= exclude[pos] != rows
    rows, neg = rows[ok], -scores[ok]
    if len(rows) > n:
        part = np.argpartition(neg, n - 1)[:n]
        rows, neg = rows[part], neg[part]
    order = np.lexsort((rows, neg))
    return rows[order].astype(np.int64, copy=False), (-neg[order]).astype(np.float64, copy=False)


def row_parts(M: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored entries of ``M[rows]`` as flat arrays (position in ``rows``, column, value); no loop,
    and nothing allocated at the size of ``M`` (rows out of range are empty)."""
    rows = np.asarray(rows, dtype=np.int64)
    n = M.shape[0]
    ok = (rows >= 0) & (rows < n)
    safe = rows if ok.all() else np.where(ok, rows, 0)
    starts = M.indptr[safe].astype(np.int64)
    lens = np.where(ok, M.indptr[safe + 1] - starts, 0)
    total = int(lens.sum())
    if total == 0:
        return EMPTY_I, EMPTY_I, EMPTY_F
    if len(rows) == 1:
        s = int(starts[0])
        return np.zeros(total, np.int64), M.indices[s:s + total].astype(np.int64), M.data[s:s + total]
    which = np.repeat(np.arange(len(rows)), lens)
    pos = np.arange(total) + np.repeat(starts - (np.cumsum(lens) - lens), lens)
    return which, M.indices[pos].astype(np.int64), M.data[pos]


def gather(M: sp.csr_matrix, rows: np.ndarray, w: np.ndarray,
           parts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """sum_i w_i * M[rows_i] as (column indices, values) without touching the other columns
    (``parts``: ``row_parts(M, rows)`` when the caller has it already)."""
    which, idx, val = row_parts(M, rows) if parts is None else parts
    if not len(idx):
        return EMPTY_I, EMPTY_F
    val = val * np.asarray(w, dtype=np.float64)[which].astype(val.dtype)  # in M's precision, as row by row
    if which[0] == which[-1]:  # one row: its entries as stored (top_n's ties then fall as they always did)
        return idx, val.astype(np.float64)
    if len(idx) * 8 > M.shape[1]:  # dense accumulation is cheaper than sorting
        acc = np.bincount(idx, weights=val, minlength=M.shape[1])
        nz = np.flatnonzero(np.bincount(idx, minlength=M.shape[1]))
        return nz.astype(np.int64), acc[nz]
    uniq, inv = np.unique(idx, return_inverse=True)
    return uniq.astype(np.int64), np.bincount(inv, weights=val, minlength=len(uniq))


def member(values: np.ndarray, of: np.ndarray, size: int) -> np.ndarray:
    """``np.isin(values, of)`` for integers in [0, size), through a boolean table: no sort, a few
    microseconds where ``isin`` takes ~50 for the 10,000 entries of a context's neighbour rows."""
    table = np.zeros(size, dtype=bool)
    table[of] = True
    return table[values]


def best_per_key(keys: np.ndarray, values: np.ndarray) -> dict[int, int]:
    """Per distinct key, the position of its largest value, the first of equal ones (``np.argmax``'s
    choice over that key's positions): what per-row ``explain`` loops found, in one sort."""
    if not len(keys):
        return {}
    order = np.lexsort((np.arange(len(keys)), -values, keys))
    k = keys[order]
    first = order[np.concatenate(([True], k[1:] != k[:-1]))]
    return dict(zip(keys[first].tolist(), first.tolist()))


def per_row(rows: np.ndarray, best: dict[int, int], text: Callable[[int], str | None]) -> list[str | None]:
    """``explain_many``'s answer: per row, ``text(j)`` of its best position j (``best_per_key``), None
    for a row without one."""
    return [None if (j := best.get(r)) is None else text(j) for r in np.asarray(rows).tolist()]


def max_per_row(rows: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct rows, the largest of each row's values, at least 0): ``np.maximum.at`` over zeros
    without its per-element cost."""
    if not len(rows):
        return rows, np.zeros(0)
    order = np.argsort(rows, kind="stable")
    r = rows[order]
    first = np.flatnonzero(np.concatenate(([True], r[1:] != r[:-1])))
    return r[first], np.maximum(np.maximum.reduceat(values[order], first), 0.0)


def prune_rows(M: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of every row (vectorised; ties by column)."""
    M = M.tocsr()
    M.eliminate_zeros()
    lens = np.diff(M.indptr)
    if not len(lens) or lens.max() <= k:
        return M
    row = np.repeat(np.arange(M.shape[0]), lens)
    order = np.lexsort((M.indices, -M.data, row))
    pos = np.arange(len(order)) - np.repeat(M.indptr[:-1], lens)
    keep = order[pos < k]
    keep.sort()
    out = sp.csr_matrix((M.data[keep], (row[keep], M.indices[keep])), shape=M.shape)
    return out


@dataclass
class SourceConfig:
    """What every source has; each source's own dataclass adds its settings (RecBole-style: TOML
    ``[engine.recommend.sources.NAME]`` is merged over its defaults)."""

    weight: float = 0.0  # weight in the fallback blend (0: left out of it)
    candidates: int = 100  # candidates proposed per query (the ranker's and the blend's budget)


def source_settings(cls: type[Source], config: RecommendConfig) -> SourceConfig:
    """The source's settings: its ``Config`` defaults with ``config.sources[name]`` merged over them."""
    from ..config import options_to_config

    given = config.sources.get(cls.name) or {}
    if not isinstance(given, dict):
        raise InputError(f"recommend.sources.{cls.name} must be a table of settings, got {given!r}")
    return options_to_config(cls.Config, given, where=f"recommend.sources.{cls.name}")


def with_settings(config: RecommendConfig, name: str, **values) -> RecommendConfig:
    """A copy of ``config`` with ``values`` set in source ``name``'s settings."""
    sources = {k: dict(v) for k, v in config.sources.items()}
    sources.setdefault(name, {}).update(values)
    return dataclasses.replace(config, sources=sources)


@dataclass
class Ranked:
    """A ranked list: catalogue rows, scores, and (when asked) the reasons per row."""

    rows: np.ndarray
    scores: np.ndarray
    reasons: list[list[str]] | None = None

    def __len__(self) -> int:
        return len(self.rows)


class Recommender:
    """Base interface: recommend / similar_items / save / load over catalogue rows."""

    name: ClassVar[str] = "recommender"

    def __init__(self, config: RecommendConfig | None = None) -> None:
        self.config = config or RecommendConfig()

    def context(self, recent: Sequence[int], exclude=None) -> Context:
        """The query context (recency weights, exclusions) for ``recent`` rows, oldest first."""
        return make_context(recent, self.config, exclude=exclude)

    def recommend(self, recent: Sequence[int], k: int = 10, *, exclude=None, reasons: bool = False) -> Ranked:
        """Top-k rows after ``recent`` (oldest first); recent rows and ``exclude`` are never returned."""
        raise NotImplementedError

    def similar_items(self, row: int, k: int = 10, *, reasons: bool = False) -> Ranked:
        """The k rows this recommender relates most to ``row``."""
        return self.recommend([int(row)], k, reasons=reasons)

    def save(self, directory: str | Path) -> None:
        """Write learned state into ``directory`` (nothing by default: rebuilt from content on load)."""

    @classmethod
    def load(cls, directory: str | Path, data: SourceData,
             config: RecommendConfig | None = None) -> Recommender:
        """Reopen from ``directory`` (default: refit on ``data``, for sources that learn nothing costly)."""
        return cls(config).fit(data)

    def fit(self, data: SourceData) -> Recommender:
        raise NotImplementedError


class Source(Recommender):
    """A candidate source: ``candidates(ctx, n) -> (rows, scores)`` and a one-line reason per row."""

    needs_histories: ClassVar[bool] = False
    #: the source's settings dataclass (``self.settings``)
    Config: ClassVar[type[SourceConfig]] = SourceConfig
    #: fields of ``Config`` this source tunes at build, with the values tried (recsys.sources.tune)
    grid: ClassVar[dict[str, tuple]] = {}

    def __init__(self, config: RecommendConfig | None = None) -> None:
        super().__init__(config)
        self.settings = source_settings(type(self), self.config)

    def fit(self, data: SourceData) -> Source:
        """Learn from ``data``; returns self."""
        self.data_ = data
        return self

    def candidates(self, ctx: Context, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to n (rows, scores), best first, never a row of ``ctx.exclude``."""
        raise NotImplementedError

    def explain(self, ctx: Context, row: int) -> str | None:
        """Why ``row`` was proposed for ``ctx`` (None when this source did not propose it); a source that
        writes ``explain_many`` gets this from it."""
        if type(self).explain_many is Source.explain_many:
            return None
        return self.explain_many(ctx, np.asarray([row]))[0]

    def explain_many(self, ctx: Context, rows: np.ndarray) -> list[str | None]:
        """``explain`` of each row (sources override it to share work across the rows of one answer)."""
        return [self.explain(ctx, r) for r in np.asarray(rows).tolist()]

    def grow(self, data: SourceData) -> None:
        """The catalogue gained rows (``add_tracks``): keep working over the larger catalogue."""
        self.fit(data)

    def recommend(self, recent: Sequence[int], k: int = 10, *, exclude=None, reasons: bool = False) -> Ranked:
        ctx = self.context(recent, exclude)
        rows, scores = self.candidates(ctx, k)
        why = [[t] if t else [] for t in self.explain_many(ctx, rows)] if reasons else None
        return Ranked(rows, scores, why)

    def label(self, row: int) -> str:
        return str(self.data_.content.labels[int(row)])

    # helpers for sources that keep sparse matrices
    def _file(self, directory: str | Path) -> Path:
        return Path(directory) / f"source_{self.name}.npz"


def csr_arrays(prefix: str, M: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as plain arrays for ``np.savez``."""
    return {f"{prefix}_data": M.data, f"{prefix}_indices": M.indices, f"{prefix}_indptr": M.indptr,
            f"{prefix}_shape": np.asarray(M.shape, dtype=np.int64)}


def csr_from(arrays: dict[str, np.ndarray], prefix: str) -> sp.csr_matrix:
    return sp.csr_matrix((arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
                         shape=tuple(int(x) for x in arrays[f"{prefix}_shape"]))


def resize_csr(M: sp.csr_matrix, shape: tuple[int, int]) -> sp.csr_matrix:
    """M padded with empty rows/columns to ``shape``."""
    M = M.tocsr().copy()
    M.resize(shape)
    return M


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from ..io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
