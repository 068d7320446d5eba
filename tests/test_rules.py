"""Rule mining: planted patterns are found by FP-growth and Apriori alike, guards trip, lookup is exact."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.errors import GuardError, InputError
from recsys.rules import (
    RuleIndex,
    RulesConfig,
    estimate_itemsets,
    mine_rules,
    one_hot,
    read_rules,
)


def planted(n_users: int = 200, seed: int = 0) -> pd.DataFrame:
    """Every user plays random background tracks; half of them also play A, B then C."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = [f"bg{j}" for j in rng.choice(60, size=6, replace=False)]
        if u % 2 == 0:
            items += ["A", "B", "C"]
        for p, t in enumerate(items):
            rows.append((f"u{u}", p, t))
    return pd.DataFrame(rows, columns=["user_id", "position", "track_id"])


def _assoc(rules: pd.DataFrame) -> dict:
    a = rules[rules["kind"] == "assoc"]
    return {(tuple(x), y[0]): (round(c, 6), round(l, 6)) for x, y, c, l in
            zip(a["antecedents"], a["consequents"], a["confidence"], a["lift"])}


def test_planted_rule_found_with_both_algorithms():
    h = planted()
    cfg = RulesConfig(min_support=0.05, min_confidence=0.5, transactions="user")
    fp = mine_rules(h, cfg)
    ap = mine_rules(h, RulesConfig(**{**cfg.__dict__, "algorithm": "apriori"}))
    got = _assoc(fp)
    assert got[(("A", "B"), "C")][0] == pytest.approx(1.0)
    assert got[(("A", "B"), "C")][1] == pytest.approx(2.0)  # C in half the transactions -> lift 2
    assert got == _assoc(ap)
    assert not any(k[1].startswith("bg") and v[0] > 0.9 for k, v in got.items())


def test_next_rules_follow_order():
    h = planted()
    rules = mine_rules(h, RulesConfig(min_support=0.05, min_confidence=0.5, transactions="user"))
    nxt = rules[rules["kind"] == "next"]
    pairs = {(a[0], c[0]) for a, c in zip(nxt["antecedents"], nxt["consequents"])}
    assert ("A", "B") in pairs and ("B", "C") in pairs
    assert ("C", "A") not in pairs and ("B", "A") not in pairs


def test_thresholds_filter():
    h = planted()
    strict = mine_rules(h, RulesConfig(min_support=0.05, min_confidence=0.99, min_lift=1.5, sequential=False))
    assert len(strict) and (strict["confidence"] >= 0.99).all() and (strict["lift"] >= 1.5).all()
    assert (strict["kind"] == "assoc").all()


def test_guard_trips_with_suggestion():
    # 30 identical long transactions: every subset of 25 items is frequent
    h = pd.DataFrame([(f"u{u}", p, f"t{p}") for u in range(30) for p in range(25)],
                     columns=["user_id", "position", "track_id"])
    with pytest.raises(GuardError, match="min_support") as exc:
        mine_rules(h, RulesConfig(min_support=0.01, max_len=8, max_itemsets=100_000, sequential=False))
    assert "itemsets" in str(exc.value)
    with pytest.raises(GuardError, match="fpgrowth"):
        mine_rules(h, RulesConfig(algorithm="apriori", min_support=0.01, max_len=8, max_itemsets=100_000))
    with pytest.raises(GuardError, match="MB"):
        mine_rules(h, RulesConfig(min_support=0.01, max_len=3, memory_limit_mb=1, sequential=False))
    # with max_len 2 it is small and fine
    ok = mine_rules(h, RulesConfig(min_support=0.01, max_len=2, sequential=False))
    assert len(ok) > 0


def test_estimate_is_an_upper_bound():
    h = planted(120)
    codes, _ = pd.factorize(h["track_id"])
    X = one_hot(pd.factorize(h["user_id"])[0], codes, codes.max() + 1)
    est = estimate_itemsets(X, 6, 3)
    from mlxtend.frequent_patterns import fpgrowth

    freq = fpgrowth(pd.DataFrame.sparse.from_spmatrix(X), min_support=6 / 120, max_len=3)
    for L in (2, 3):
        actual = int((freq["itemsets"].map(len) == L).sum())
        assert actual <= est[L] + 1e-9


def test_rule_index_matches_only_full_antecedents():
    h = planted()
    rules = mine_rules(h, RulesConfig(min_support=0.05, min_confidence=0.5, transactions="user"))
    row_of = {t: i for i, t in enumerate(sorted(set(h["track_id"])))}
    idx = RuleIndex(rules, row_of, len(row_of))
    assert idx.n_rules == len(rules)
    only_a = set(idx.match([row_of["A"]]).tolist())
    assert all(idx.ante_len[r] == 1 for r in only_a)
    ab = idx.match([row_of["A"], row_of["B"]])
    cons = {idx.consequent[r] for r in ab if idx.ante_len[r] == 2}
    assert row_of["C"] in cons
    assert idx.match([]).size == 0


def test_empty_and_bad_input(tmp_path):
    with pytest.raises(InputError):
        mine_rules(pd.DataFrame(columns=["user_id", "position", "track_id"]))
    h = planted(10)
    h["skipped"] = True
    with pytest.raises(InputError, match="skipped"):
        mine_rules(h)
    with pytest.raises(InputError, match="algorithm"):
        mine_rules(planted(10), RulesConfig(algorithm="eclat"))


def test_rules_roundtrip_parquet(tmp_path):
    from recsys.io import write_table

    rules = mine_rules(planted(), RulesConfig(min_support=0.05))
    write_table(rules, tmp_path / "rules.parquet")
    back = read_rules(tmp_path / "rules.parquet")
    assert back["antecedents"].tolist() == rules["antecedents"].tolist()
    assert np.allclose(back["confidence"], rules["confidence"])


def test_auto_min_support_never_fails_explicit_one_may(caplog):
    # 5 listeners share one 25-track playlist (every subset frequent at 2 / 200), the rest play pairs
    rows = [(f"u{u}", p, f"big{p}") for u in range(5) for p in range(25)]
    rows += [(f"v{u}", p, f"s{(u + p) % 150}") for u in range(195) for p in range(2)]
    h = pd.DataFrame(rows, columns=["user_id", "position", "track_id"])
    cfg = {"max_len": 8, "max_itemsets": 100_000, "sequential": False}
    with pytest.raises(GuardError, match="raise min_support"):
        mine_rules(h, RulesConfig(min_support=0.01, **cfg))
    with caplog.at_level("WARNING", logger="recsys.rules"):
        auto = mine_rules(h, RulesConfig(**cfg))  # min_support 0 = auto: raised until the guards pass
    assert "using min_support" in caplog.text
    assert not auto["antecedents"].map(lambda a: any(x.startswith("big") for x in a)).any()
