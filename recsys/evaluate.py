"""Ranking evaluation: leave-last-out HitRate@K, MRR@K, NDCG@K and coverage, hybrid beside baselines.

Each user's last (non-skipped) play is held out; everything else is training. Rules and play
counts are re-derived from the training part only, so the held-out play cannot leak into the
hybrid. The baselines run on the same split in the same call:

- ``popularity``: most-played training tracks;
- ``itemknn``: item-item cosine over user co-occurrence in training, summed over the recent tracks;
- ``content``: FAISS neighbours of the recent tracks only (no histories at all).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import InputError
from .rules import RuleIndex, mine_rules
from .users import read_histories

log = logging.getLogger(__name__)


def rank_metrics(ranked: Iterable[list[int]], targets: Iterable[int], *, k: int) -> dict[str, float]:
    """HitRate@k, MRR@k and NDCG@k for one held-out item per user."""
    hits, rr, ndcg, n = 0, 0.0, 0.0, 0
    for recs, t in zip(ranked, targets):
        n += 1
        recs = list(recs)[:k]
        if t in recs:
            r = recs.index(t) + 1
            hits += 1
            rr += 1.0 / r
            ndcg += 1.0 / np.log2(r + 1)
    n = max(n, 1)
    return {f"hit@{k}": hits / n, f"mrr@{k}": rr / n, f"ndcg@{k}": ndcg / n}


def leave_last_out(histories: pd.DataFrame, *, min_plays: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train plays, test rows user_id/target) holding out each user's last play (users with >= min_plays)."""
    h = histories
    if "skipped" in h.columns:
        h = h[~h["skipped"]]
    h = h.sort_values(["user_id", "position"], kind="stable")
    size = h.groupby("user_id", sort=False)["track_id"].transform("size")
    is_last = h.groupby("user_id", sort=False).cumcount(ascending=False) == 0
    test_mask = is_last & (size >= min_plays)
    test = h.loc[test_mask, ["user_id", "track_id"]].rename(columns={"track_id": "target"}).reset_index(drop=True)
    return h.loc[~test_mask].reset_index(drop=True), test


class ItemKNN:
    """Item-item cosine similarity over binary user x item co-occurrence (the classic CF baseline)."""

    def fit(self, train: pd.DataFrame, row_of: dict[str, int], n_items: int) -> "ItemKNN":
        users = pd.factorize(train["user_id"])[0]
        items = train["track_id"].map(row_of).to_numpy()
        X = sp.csr_matrix((np.ones(len(items), np.float32), (users, items)), shape=(users.max() + 1, n_items))
        X.data[:] = 1.0
        X.sum_duplicates()
        X.data[:] = 1.0
        norms = np.sqrt(np.asarray(X.sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        Xn = X @ sp.diags(1.0 / norms)
        S = (Xn.T @ Xn).tocsr()
        S.setdiag(0)
        S.eliminate_zeros()
        self.S_ = S
        return self

    def recommend_rows(self, recent: list[int], k: int) -> list[int]:
        scores = np.asarray(self.S_[recent].sum(axis=0)).ravel()
        scores[recent] = 0
        nz = np.flatnonzero(scores > 0)
        if len(nz) == 0:
            return []
        top = nz[np.lexsort((nz, -scores[nz]))][:k]
        return top.tolist()


def evaluate(engine, histories, *, k: int = 10, max_users: int | None = None, seed: int = 0,
             n_recent: int | None = None, progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """Leave-last-out comparison of the hybrid and its baselines; returns (table, split info)."""
    from tqdm import tqdm

    h = read_histories(histories)
    known = h["track_id"].isin(engine.row_of_)
    n_unknown = int((~known).sum())
    h = h[known]
    if len(h) == 0:
        raise InputError("histories: no play refers to a track in the index")
    train, test = leave_last_out(h)
    if len(test) == 0:
        raise InputError("histories: no user has at least 2 plays, nothing to hold out")
    if max_users and len(test) > max_users:
        test = test.sample(n=max_users, random_state=seed).reset_index(drop=True)
    n_items = engine.n_tracks
    row_of = engine.row_of_
    n_recent = n_recent or engine.config.recommend.max_recent
    recent_of = {u: g["track_id"].map(row_of).to_numpy()[-n_recent:].tolist()
                 for u, g in train[train["user_id"].isin(set(test["user_id"]))].groupby("user_id", sort=False)}
    test = test[test["user_id"].isin(recent_of)].reset_index(drop=True)
    if len(test) == 0:
        raise InputError("histories: no test user has a training play left")
    targets = test["target"].map(row_of).to_numpy()
    pop = np.bincount(train["track_id"].map(row_of).to_numpy(), minlength=n_items).astype(np.float64)
    rules = mine_rules(train, engine.config.rules)
    rindex = RuleIndex(rules, row_of, n_items) if len(rules) else None
    cfg = dataclasses.replace(engine.config.recommend, max_recent=n_recent)
    hybrid = engine.make_recommender(rindex, pop, cfg)
    knn = ItemKNN().fit(train, row_of, n_items)
    pop_order = np.lexsort((np.arange(n_items), -pop))
    methods = {
        "hybrid": lambda r: [x for x, _, _ in hybrid.recommend_rows(r, k)],
        "content": lambda r: [x for x, _, _ in hybrid.recommend_rows(r, k, use=("neighbours",))],
        "hybrid-no-meta": lambda r: [x for x, _, _ in hybrid.recommend_rows(r, k, use=("rules", "cluster", "neighbours"))],
        "itemknn": lambda r: knn.recommend_rows(r, k),
        "popularity": lambda r: [int(x) for x in pop_order[:k + len(r)] if x not in set(r)][:k],
    }
    ranked: dict[str, list[list[int]]] = {m: [] for m in methods}
    for u in tqdm(test["user_id"].tolist(), desc="evaluating", unit="user", disable=not progress, leave=False):
        r = recent_of[u]
        for m, fn in methods.items():
            ranked[m].append(fn(r))
    cold = pop == 0
    rows = []
    for m, lists in ranked.items():
        met = rank_metrics(lists, targets.tolist(), k=k)
        recs = [x for lst in lists for x in lst]
        met["cold_hits"] = float(np.mean([t in lst[:k] and cold[t] for lst, t in zip(lists, targets.tolist())]))
        met["coverage"] = len(set(recs)) / n_items
        met["cold_share"] = float(np.mean(cold[recs])) if recs else 0.0
        rows.append({"method": m, **met})
    info = {"test_users": int(len(test)), "train_plays": int(len(train)), "unknown_plays": n_unknown,
            "rules": int(len(rules)), "cold_targets": float(np.mean(cold[targets])), "k": k, "n_recent": n_recent}
    return pd.DataFrame(rows), info
