"""Rules mined on Spark (local[2]) equal mlxtend's: same co-occurrence rules, support, confidence,
lift, count."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.errors import GuardError, InputError
from recsys.rules import RulesConfig, mine_rules

pytest.importorskip("pyspark", reason="PySpark is not installed (pip install 'recsys[spark]')")
pytestmark = pytest.mark.slow  # starts a Spark JVM: not in make test-fast
if shutil.which("java") is None:
    pytest.skip("no 'java' on PATH: Spark needs Java 17+ (apt-get install -y openjdk-17-jre-headless)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def spark():
    """One local[2] session for the module (JVM start-up costs ~10-20 s); engine="spark" reuses it."""
    from recsys.rules_spark import spark_session

    s = spark_session("local[2]")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def histories() -> pd.DataFrame:
    from recsys.users import SimulationConfig, simulate_users

    n = 300
    cat = pd.DataFrame({"track_id": [f"t{i:04d}" for i in range(n)],
                        "track_popularity": np.random.default_rng(0).integers(0, 100, n)})
    return simulate_users(cat, SimulationConfig(n_users=400, seed=1), groups=np.arange(n) % 12)


def _keyed(rules: pd.DataFrame) -> pd.DataFrame:
    r = rules.copy()
    r.index = r["kind"] + ":" + r["antecedents"].map("|".join) + ">" + r["consequents"].map(lambda c: c[0])
    return r.sort_index()


@pytest.mark.parametrize("transactions", ["session", "user"])
def test_spark_writes_the_same_rules_as_mlxtend(spark, histories, transactions):
    cfg = RulesConfig(transactions=transactions, min_support=0.01 if transactions == "user" else 0.0)
    a = _keyed(mine_rules(histories, cfg))
    b = _keyed(mine_rules(histories, RulesConfig(**{**cfg.__dict__, "engine": "spark",
                                                    "spark_master": "local[2]"})))
    assert (a["kind"] == "assoc").sum() > 50  # a real comparison, not two empty tables
    assert list(a.columns) == list(b.columns)
    assert a.index.equals(b.index)  # the same rules, co-occurrence and next-track
    for col in ("support", "confidence", "lift"):
        np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float), rtol=1e-12, atol=0)
    assert (a["count"].to_numpy() == b["count"].to_numpy()).all()
    assert b["antecedents"].map(len).max() <= cfg.max_len - 1
    assert b["count"].dtype == np.int64


def test_spark_respects_max_len_and_thresholds(spark, histories):
    cfg = RulesConfig(transactions="user", min_support=0.02, max_len=2, min_confidence=0.3, min_lift=1.5,
                      sequential=False, engine="spark")
    b = mine_rules(histories, cfg)
    a = mine_rules(histories, RulesConfig(**{**cfg.__dict__, "engine": "mlxtend"}))
    assert len(b) == len(a) > 0
    assert set(b["antecedents"].map(len)) == {1}
    assert (b["confidence"] >= 0.3).all() and (b["lift"] >= 1.5).all() and (b["kind"] == "assoc").all()


def test_spark_guard_and_bad_engine(spark, histories):
    with pytest.raises(GuardError, match="frequent itemsets"):
        mine_rules(histories, RulesConfig(transactions="user", min_support=0.01, max_itemsets=10,
                                          engine="spark"))
    with pytest.raises(InputError, match="unknown rules engine"):
        mine_rules(histories, RulesConfig(engine="hadoop"))


def test_cli_rules_mine_engine_spark_matches_default(spark, histories, tmp_path):
    from recsys.cli import main

    h = tmp_path / "h.parquet"
    histories.to_parquet(h)
    runner = CliRunner()
    for name, extra in (("default", []), ("spark", ["--engine", "spark", "--spark-master", "local[2]"])):
        res = runner.invoke(main, ["rules", "mine", "--histories", str(h),
                                   "--out", str(tmp_path / f"{name}.parquet"),
                                   "--transactions", "user", "--min-support", "0.01", *extra])
        assert res.exit_code == 0, res.output
    a, b = (pd.read_parquet(tmp_path / f"{n}.parquet") for n in ("default", "spark"))
    for t in (a, b):
        for c in ("antecedents", "consequents"):
            t[c] = t[c].map(tuple)
    pd.testing.assert_frame_equal(_keyed(a), _keyed(b), check_exact=False, rtol=1e-12)
