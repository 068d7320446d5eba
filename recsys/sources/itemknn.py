"""Item co-occurrence sources: item-kNN (cosine over who played what), RP3beta (random walks on the
user-item graph) and "played right after".

``itemknn``: S = cosine between item columns of the binary users x items matrix, pruned to the
``neighbours`` most similar items per item; a candidate scores sum_r w_r S[r, c] over the
recent rows r (recency weights). ``rp3beta``: S = P(item -> user -> item) of a three-step walk with
each transition probability raised to ``alpha`` and the target's popularity divided out to the power
``beta`` (Paudel et al. 2017; Dacrema et al. 2019 found it among the strongest top-n baselines), pruned
and summed the same way. ``sequence``: P(c right after r) = count(r -> c) / (count(r) + 1) over
consecutive plays of one user. All reach only tracks played in training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .base import (
    Context,
    best_per_key,
    per_row,
    Source,
    SourceConfig,
    SourceData,
    csr_arrays,
    csr_from,
    gather,
    load_npz_arrays,
    member,
    prune_rows,
    resize_csr,
    row_parts,
    save_npz,
    top_n,
)


def item_topk(played: np.ndarray, n_items: int, k: int, block, *, chunk: int = 4096) -> sp.csr_matrix:
    """An items x items similarity kept to its top k per row, diagonal removed, computed ``chunk`` rows
    at a time: ``block(rows) -> (coo of the rows' similarities, values)`` for the ``played`` rows; the
    others stay empty."""
    blocks = []
    for s in range(0, len(played), chunk):
        rows = played[s:s + chunk]
        B, val = block(rows)
        keep = B.col != rows[B.row]
        B = sp.csr_matrix((val[keep].astype(np.float32), (B.row[keep], B.col[keep])),
                          shape=(len(rows), n_items))
        blocks.append(prune_rows(B, k))
    if not blocks:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    S = sp.vstack(blocks).tocsr()
    # place the played rows back at their catalogue positions
    P = sp.csr_matrix((np.ones(len(played), np.float32), (played, np.arange(len(played)))),
                      shape=(n_items, len(played)))
    return (P @ S).tocsr().astype(np.float32)


def cosine_knn(X: sp.csr_matrix, k: int, *, shrink: float = 0.0, chunk: int = 4096) -> sp.csr_matrix:
    """Items x items cosine co-plays / (sqrt(n_a n_b) + shrink) of the columns of X, top-k per row,
    diagonal removed."""
    cnt = np.asarray(X.sum(axis=0)).ravel()
    norms = np.sqrt(np.maximum(cnt, 1.0))
    Xc = X.tocsc()
    XT = Xc.T.tocsr()

    def block(rows):
        B = (XT[rows] @ Xc).tocoo()
        return B, B.data / (norms[rows[B.row]] * norms[B.col] + shrink)

    return item_topk(np.flatnonzero(cnt > 0), X.shape[1], k, block, chunk=chunk)


def rp3beta_knn(X: sp.csr_matrix, k: int, *, alpha: float = 0.6, beta: float = 0.3,
                chunk: int = 4096) -> sp.csr_matrix:
    """Items x items RP3beta: (P_iu^alpha P_ui^alpha)[a, b] / popularity(b)^beta of the binary users x
    items matrix X (P row-normalised transition probabilities), top-k per row, diagonal removed."""
    pop = np.asarray(X.sum(axis=0)).ravel()
    per_user = np.asarray(X.sum(axis=1)).ravel()
    Pui = (sp.diags(1.0 / np.maximum(per_user, 1.0)) @ X).tocsr()
    Piu = (sp.diags(1.0 / np.maximum(pop, 1.0)) @ X.T).tocsr()
    Pui.data **= alpha
    Piu.data **= alpha
    penalty = (1.0 / np.maximum(pop, 1.0) ** beta).astype(np.float64)

    def block(rows):
        B = (Piu[rows] @ Pui).tocoo()
        return B, B.data * penalty[B.col]

    return item_topk(np.flatnonzero(pop > 0), X.shape[1], k, block, chunk=chunk)


@dataclass
class ItemKNNConfig(SourceConfig):
    """Item-kNN: neighbours kept per item and the shrinkage of the cosine."""

    neighbours: int = 100  # most similar items kept per item
    shrink: float = 0.0  # cosine = co-plays / (sqrt(n_a n_b) + shrink)


@dataclass
class RP3BetaConfig(SourceConfig):
    """RP3beta: neighbours kept per item, the walk's exponent and the popularity penalty."""

    neighbours: int = 100  # most similar items kept per item
    alpha: float = 0.6  # transition probabilities raised to alpha (1: the plain walk)
    beta: float = 0.3  # similarity divided by popularity(target)^beta (0: no penalty)


@dataclass
class SequenceConfig(SourceConfig):
    """The "played right after" source: successors kept per item."""

    neighbours: int = 100


class ItemKNNSource(Source):
    """Item-item cosine neighbours of the recent tracks (the classic collaborative baseline)."""

    name = "itemknn"
    needs_histories = True
    Config = ItemKNNConfig
    grid = {"shrink": (0.0, 5.0, 20.0, 100.0), "neighbours": (50, 100, 300)}
    measure, digits = "cos", 2  # the similarity's name in reasons, and the digits its values show

    def fit(self, data: SourceData) -> ItemKNNSource:
        super().fit(data)
        X = data.interactions.matrix()
        self.S_ = self.similarity(X)
        self.counts_ = np.asarray(X.sum(axis=0)).ravel()
        return self

    def similarity(self, X: sp.csr_matrix) -> sp.csr_matrix:
        """The pruned items x items similarity of the users x items matrix X (here: cosine)."""
        return cosine_knn(X, self.settings.neighbours, shrink=self.settings.shrink)

    def candidates(self, ctx: Context, n: int):
        idx, val = gather(self.S_, ctx.rows, ctx.weights, _rows_of(self.S_, ctx, self.name))
        return top_n(idx, val, n, ctx.exclude)

    def explain_many(self, ctx: Context, rows: np.ndarray) -> list[str | None]:
        """Per row, the recent track with the largest weighted similarity to it (ties: the most recent)."""
        which, cols, vals = _rows_of(self.S_, ctx, self.name)
        sel = np.flatnonzero(member(cols, rows, self.S_.shape[1]))
        v = vals[sel] * ctx.weights[which[sel]]
        return per_row(rows, best_per_key(cols[sel], v), lambda j: None if v[j] <= 0 else (
            f"often in the same playlists as {self.label(ctx.rows[which[sel[j]]])} "
            f"({self.measure} {float(v[j]):.{self.digits}f})"))

    def save(self, directory) -> None:
        save_npz(self._file(directory), {**csr_arrays("S", self.S_), "counts": self.counts_})

    @classmethod
    def load(cls, directory, data: SourceData, config=None) -> ItemKNNSource:
        self = cls(config)
        self.data_ = data
        a = load_npz_arrays(self._file(directory))
        self.S_, self.counts_ = csr_from(a, "S"), a["counts"]
        return self

    def grow(self, data: SourceData) -> None:
        self.data_ = data
        n = data.content.n_items
        self.S_ = resize_csr(self.S_, (n, n))
        self.counts_ = np.r_[self.counts_, np.zeros(n - len(self.counts_))]


class RP3BetaSource(ItemKNNSource):
    """Item-item RP3beta neighbours of the recent tracks: the walk item-playlist-item, popularity
    penalised, so that a niche track sharing playlists with the context outranks a hit that is everywhere."""

    name = "rp3beta"
    Config = RP3BetaConfig
    grid = {"alpha": (0.4, 0.6, 0.8, 1.0), "beta": (0.0, 0.2, 0.3, 0.5), "neighbours": (100, 300)}
    measure, digits = "RP3beta", 3  # walk probabilities are small: 0.012

    def similarity(self, X: sp.csr_matrix) -> sp.csr_matrix:
        c = self.settings
        return rp3beta_knn(X, c.neighbours, alpha=c.alpha, beta=c.beta)


def _rows_of(M: sp.csr_matrix, ctx: Context, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """M's entries in the rows of the context's distinct tracks (``row_parts``), cached per query."""
    key = f"{name}:rows"
    got = ctx.cache.get(key)
    if got is None:
        got = ctx.cache[key] = row_parts(M, ctx.rows)
    return got


def next_counts(inter, gap: int = 1) -> sp.csr_matrix:
    """Counts of item b played within ``gap`` plays after item a by the same user (a != b)."""
    a_all, b_all = [], []
    for g in range(1, gap + 1):
        same = inter.users[g:] == inter.users[:-g]
        a, b = inter.items[:-g][same], inter.items[g:][same]
        a_all.append(a[a != b])
        b_all.append(b[a != b])
    a = np.concatenate(a_all) if a_all else np.zeros(0, np.int64)
    b = np.concatenate(b_all) if b_all else np.zeros(0, np.int64)
    M = sp.csr_matrix((np.ones(len(a), np.float32), (a, b)), shape=(inter.n_items, inter.n_items))
    M.sum_duplicates()
    return M


class SequenceSource(Source):
    """What was played right after the recent tracks (first-order transitions, shrunk toward 0)."""

    name = "sequence"
    needs_histories = True
    Config = SequenceConfig

    def fit(self, data: SourceData) -> SequenceSource:
        super().fit(data)
        C = next_counts(data.interactions)
        out = np.asarray(C.sum(axis=1)).ravel()
        P = sp.diags((1.0 / (out + 1.0)).astype(np.float32)) @ C
        self.P_ = prune_rows(P.tocsr(), self.settings.neighbours).astype(np.float32)
        self.C_ = prune_rows(C, self.settings.neighbours)
        return self

    def candidates(self, ctx: Context, n: int):
        idx, val = gather(self.P_, ctx.rows, ctx.weights)
        return top_n(idx, val, n, ctx.exclude)

    def explain_many(self, ctx: Context, rows: np.ndarray) -> list[str | None]:
        """Per row, the most recent track it was played right after, and how often."""
        which, cols, vals = _rows_of(self.C_, ctx, self.name)
        sel = np.flatnonzero(member(cols, rows, self.C_.shape[1]) & (vals > 0))
        best = best_per_key(cols[sel], -which[sel])  # the most recent track it followed

        def text(j: int) -> str:
            c, prev = int(vals[sel[j]]), ctx.rows[which[sel[j]]]
            return f"played right after {self.label(prev)} in {c} histor{'y' if c == 1 else 'ies'}"

        return per_row(rows, best, text)

    def save(self, directory) -> None:
        save_npz(self._file(directory), {**csr_arrays("P", self.P_), **csr_arrays("C", self.C_)})

    @classmethod
    def load(cls, directory, data: SourceData, config=None) -> SequenceSource:
        self = cls(config)
        self.data_ = data
        a = load_npz_arrays(self._file(directory))
        self.P_, self.C_ = csr_from(a, "P"), csr_from(a, "C")
        return self

    def grow(self, data: SourceData) -> None:
        self.data_ = data
        n = data.content.n_items
        self.P_, self.C_ = resize_csr(self.P_, (n, n)), resize_csr(self.C_, (n, n))
