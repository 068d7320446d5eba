"""Association and next-track rules (mined with mlxtend, :mod:`recsys.rules`) as a candidate source.

A rule fires when its whole antecedent is among the recent tracks; a candidate's score is the
noisy-or over the rules that fire for it of strength x the recency weight of the antecedent's most
recent track (next-track rules x ``w_next``). Rules are also the main explanation shown to people.
"""
from __future__ import annotations

import numpy as np

from .base import Context, Source, SourceData, top_n


class RulesSource(Source):
    """Consequents of the association / next-track rules whose antecedents were just played."""

    name = "rules"
    needs_histories = True

    def fit(self, data: SourceData) -> RulesSource:
        super().fit(data)
        self.rules_ = data.rules
        return self

    def fired(self, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """(rule ids, strengths) of the rules that fire for the context (cached per query)."""
        got = ctx.cache.get(self.name)
        if got is not None:
            return got
        R = self.rules_
        rows, wrow = ctx.recent(self.config.max_recent)
        got = (np.zeros(0, np.int64), np.zeros(0))
        if R is not None and R.n_rules:
            rids = R.match(rows.tolist())
            if len(rids):
                order = np.argsort(rows)
                lens = R.ante_len[rids]
                starts = np.r_[0, np.cumsum(lens)[:-1]]
                pos = np.arange(int(lens.sum())) - np.repeat(starts, lens) + np.repeat(R.ante_ptr[rids], lens)
                flat = R.ante_items[pos]
                w = np.maximum.reduceat(wrow[order[np.searchsorted(rows[order], flat)]], starts)
                s = np.minimum(R.strength[rids] * w * np.where(R.kind_next[rids], self.config.w_next, 1.0),
                               1.0)
                got = (rids, s)
        ctx.cache[self.name] = got
        return got

    def candidates(self, ctx: Context, n: int):
        rids, s = self.fired(ctx)
        if not len(rids):
            return top_n(np.zeros(0, np.int64), np.zeros(0), n)
        cons = self.rules_.consequent[rids]
        uniq, inv = np.unique(cons, return_inverse=True)
        miss = np.ones(len(uniq))
        np.multiply.at(miss, inv, 1.0 - s)
        return top_n(uniq, 1.0 - miss, n, ctx.exclude)

    def explain(self, ctx: Context, row: int) -> str | None:
        rids, s = self.fired(ctx)
        hit = np.flatnonzero(self.rules_.consequent[rids] == row) if len(rids) else []
        if not len(hit):
            return None
        R, rid = self.rules_, int(rids[hit[np.argmax(s[hit])]])
        names = ",".join(self.label(a) for a in R.antecedent(rid))
        kind = "next" if R.kind_next[rid] else "rule"
        return (f"{kind} {{{names}}}->{self.label(R.consequent[rid])} "
                f"conf {R.confidence[rid]:.2f} lift {R.lift[rid]:.1f}")

    def grow(self, data: SourceData) -> None:
        self.data_ = data  # rule ids index catalogue rows, which never move
