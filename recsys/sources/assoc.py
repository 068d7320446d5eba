"""Association and next-track rules (mined with mlxtend, :mod:`recsys.rules`) as a candidate source.

A rule fires when its whole antecedent is among the recent tracks; a candidate's score is the
noisy-or over the rules that fire for it of strength x the recency weight of the antecedent's most
recent track (next-track rules x ``next_weight``). Rules are also the main explanation shown to people.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..rules import RULE_COLUMNS, RuleIndex, RulesConfig, mine_rules
from .base import Context, Source, SourceConfig, SourceData, best_per_key, member, per_row, top_n


@dataclass
class RulesSourceConfig(SourceConfig):
    """The rules source: its mining settings (a RulesConfig) and the weight of next-track rules."""

    weight: float = 1.5
    candidates: int = 500
    next_weight: float = 1.0  # sequential ("next") rules relative to co-occurrence rules
    mining: RulesConfig = field(default_factory=RulesConfig)


class RulesSource(Source):
    """Consequents of the association / next-track rules whose antecedents were just played.

    It mines its own rules from the plays it is fitted on (its ``mining`` settings, TOML
    ``[engine.recommend.sources.rules.mining]``), so a fold's or a split's training part gives its own
    rules with no special path, and saves the table as ``rules.parquet``.
    """

    name = "rules"
    needs_histories = True
    Config = RulesSourceConfig
    FILE = "rules.parquet"

    def fit(self, data: SourceData) -> RulesSource:
        super().fit(data)
        inter = data.interactions
        if inter is None or len(inter.items) == 0:
            self.table_ = pd.DataFrame(columns=RULE_COLUMNS)
        else:
            self.table_ = mine_rules(inter.to_histories(data.content.labels), self.settings.mining)
        self._index()
        return self

    def _index(self) -> None:
        labels = self.data_.content.labels
        row_of = {str(t): i for i, t in enumerate(labels)}
        self.rules_ = RuleIndex(self.table_, row_of, len(labels)) if len(self.table_) else None

    @property
    def table(self) -> pd.DataFrame:
        """The mined rules (``recsys.rules.RULE_COLUMNS``; empty when none were found)."""
        return self.table_

    def save(self, directory) -> None:
        from ..io import write_table

        write_table(self.table_, Path(directory) / self.FILE)

    @classmethod
    def load(cls, directory, data: SourceData, config=None) -> RulesSource:
        from ..errors import IndexFormatError

        self = cls(config)
        self.data_ = data
        try:
            table = pd.read_parquet(Path(directory) / cls.FILE)
        except Exception as exc:  # pyarrow errors
            raise IndexFormatError(f"{directory}: unreadable {cls.FILE} "
                                   f"({type(exc).__name__}: {exc})") from None
        if len(table):
            for col in ("antecedents", "consequents"):
                table[col] = table[col].map(lambda a: tuple(str(x) for x in a))
        self.table_ = table
        self._index()
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
                starts = np.concatenate(([0], np.cumsum(lens)[:-1]))  # (np.r_ costs ~10 us a call)
                pos = np.arange(int(lens.sum())) - np.repeat(starts, lens) + np.repeat(R.ante_ptr[rids], lens)
                flat = R.ante_items[pos]
                w = np.maximum.reduceat(wrow[order[np.searchsorted(rows[order], flat)]], starts)
                nxt = np.where(R.kind_next[rids], self.settings.next_weight, 1.0)
                s = np.minimum(R.strength[rids] * w * nxt, 1.0)
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

    def explain_many(self, ctx: Context, rows: np.ndarray) -> list[str | None]:
        """Per row, the strongest rule that fired for it (the first of equally strong ones)."""
        rids, s = self.fired(ctx)
        if not len(rids):
            return [None] * len(rows)
        R = self.rules_
        cons = R.consequent[rids]
        sel = np.flatnonzero(member(cons, rows, len(self.data_.content.labels)))

        def text(j: int) -> str:
            rid = int(rids[sel[j]])
            names = ",".join(self.label(a) for a in R.antecedent(rid))
            kind = "next" if R.kind_next[rid] else "rule"
            return (f"{kind} {{{names}}}->{self.label(R.consequent[rid])} "
                    f"conf {R.confidence[rid]:.2f} lift {R.lift[rid]:.1f}")

        return per_row(rows, best_per_key(cons[sel], s[sel]), text)

    def grow(self, data: SourceData) -> None:
        self.data_ = data  # rule ids index catalogue rows, which never move
        if self.rules_ is not None:  # the lookup covers the larger catalogue (new rows have no rules)
            self._index()
