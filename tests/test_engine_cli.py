"""The engine commands through click: build-index, recommend, similar, rules mine, simulate-users,
evaluate."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.cli import main

from recsys.testing.engine import make_catalog


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    cat = d / "cat.csv"
    make_catalog(160).to_csv(cat, index=False)
    cfg = d / "engine.toml"
    cfg.write_text("[engine]\ngenre_probs = false\n[engine.index]\nn_clusters = 6\n")
    runner = CliRunner()
    hist = d / "h.parquet"
    r = runner.invoke(main, ["simulate-users", "--catalog", str(cat), "--users", "60", "--out", str(hist),
                             "--seed", "4"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["build-index", "--catalog", str(cat), "--histories", str(hist),
                             "--config", str(cfg), "--out", str(d / "idx")])
    assert r.exit_code == 0, r.output
    assert "clusters 6" in r.output
    return runner, d, cat, hist


def test_recommend_text_and_json(setup):
    runner, d, _, _ = setup
    r = runner.invoke(main, ["recommend", "--index", str(d / "idx"), "--recent", "t0001", "--recent", "t0002",
                             "-k", "4"])
    assert r.exit_code == 0, r.output
    assert "Song" in r.output and "·" in r.output
    r = runner.invoke(main, ["recommend", "--index", str(d / "idx"), "--recent", "t0001", "--json",
                             "-k", "3"])
    recs = json.loads(r.stdout)
    assert len(recs) == 3 and all(x["reasons"] for x in recs) and "t0001" not in [x["track_id"] for x in recs]


def test_recommend_unknown_ids(setup):
    runner, d, _, _ = setup
    r = runner.invoke(main, ["recommend", "--index", str(d / "idx"), "--recent", "nope", "--recent", "t0003"])
    assert r.exit_code == 0
    assert "warning" in r.output and "nope" in r.output
    r = runner.invoke(main, ["recommend", "--index", str(d / "idx"), "--recent", "nope"])
    assert r.exit_code == 2 and r.output.startswith("error:") and len(r.output.strip().splitlines()) == 1


def test_similar_and_bad_index(setup, tmp_path):
    runner, d, _, _ = setup
    r = runner.invoke(main, ["similar", "--index", str(d / "idx"), "--track", "t0005", "-k", "3"])
    assert r.exit_code == 0 and "cluster" in r.output
    r = runner.invoke(main, ["recommend", "--index", str(tmp_path), "--recent", "t0001"])
    assert r.exit_code == 2 and "error:" in r.output


def test_rules_mine_and_evaluate(setup):
    runner, d, _, hist = setup
    out = d / "rules.parquet"
    r = runner.invoke(main, ["rules", "mine", "--histories", str(hist), "--out", str(out),
                             "--algorithm", "apriori"])
    assert r.exit_code == 0, r.output
    assert len(pd.read_parquet(out)) > 0
    r = runner.invoke(main, ["rules", "mine", "--histories", str(hist), "--out", str(d / "x.parquet"),
                             "--min-support", "0.0001", "--min-count", "1", "--max-len", "10",
                             "--max-itemsets", "1000", "--transactions", "user"])
    assert r.exit_code == 2 and "min_support" in r.output
    r = runner.invoke(main, ["evaluate", "--index", str(d / "idx"), "--histories", str(hist), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert {x["method"] for x in res["results"]} >= {"hybrid", "popularity", "itemknn", "content"}


def test_build_index_needs_input(setup, tmp_path):
    runner, _, _, _ = setup
    r = runner.invoke(main, ["build-index", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0
    r = runner.invoke(main, ["build-index", "--catalog", str(tmp_path / "missing.csv"),
                             "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "not found" in r.output
