"""Whole users held out (`--split users` / `--test-histories`): nothing fitted ever sees them; bad input is
one clear line."""
from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.cli import main
from recsys.engine import Engine
from recsys.errors import InputError
from recsys.evaluate import evaluate, prepare_split, user_holdout
from recsys.testing.engine import fast_config, make_catalog, planted_histories


@pytest.fixture(scope="module")
def content_engine():
    cat = make_catalog(240)
    cfg = fast_config(genre_probs=False)
    cfg.recommend.ranker.min_users = 50
    cfg.recommend.tune_seconds = 4
    cfg.recommend.ranker.folds = 2
    return Engine.build(cat, simulate_users=0, config=cfg, seed=0), planted_histories(cat, n_users=150)


def test_user_holdout_is_seeded_and_whole_users():
    h = planted_histories(make_catalog(120), n_users=50, cold=10)
    train, test = user_holdout(h, share=0.2, seed=3)
    assert test["user_id"].nunique() == 10 and not set(train["user_id"]) & set(test["user_id"])
    assert len(train) + len(test) == len(h)
    assert user_holdout(h, share=0.2, seed=3)[1].equals(test)
    with pytest.raises(InputError, match="between 0 and 1"):
        user_holdout(h, share=1.0)


def test_test_users_never_reach_rules_sources_or_ranker(content_engine, monkeypatch):
    eng, hist = content_engine

    import recsys.sources.assoc as assoc

    seen = []  # the users of every rules-mining call: the rules source mines on each fit
    real_mine = assoc.mine_rules
    monkeypatch.setattr(assoc, "mine_rules", lambda train, cfg: seen.append(set(train["user_id"])) or
                        real_mine(train, cfg))
    split = prepare_split(eng, hist, protocol="users", test_share=0.2, seed=1)
    test_users = set(split.test["user_id"])
    assert len(test_users) == 30
    assert not set(split.interactions.user_ids) & test_users
    # context = every play of the test user but the last, target = the last
    u = split.test["user_id"].iloc[0]
    plays = hist[hist["user_id"] == u].sort_values("position")["track_id"].map(eng.tracks.row_of).tolist()
    assert split.recent[0] == plays[:-1] and split.targets[0] == plays[-1]
    table, info = evaluate(eng, hist, protocol="users", seed=1, k=10)
    assert seen and not any(users & test_users for users in seen)  # final fit, ranker folds, tuning
    got = table.set_index("method")
    assert info["protocol"] == "users" and info["test_users"] == 30
    assert ({"hybrid", "ease", "itemknn (tuned)", "vsknn (tuned)", "ease (tuned)", "als (tuned)"}
            <= set(got.index))
    assert set(info["baselines"]["sources"]) == {"itemknn", "rp3beta", "vsknn", "ease", "als"}
    assert got.loc["hybrid", "hit@10"] > got.loc["popularity", "hit@10"]


def test_test_histories_file_leaves_training(content_engine, tmp_path):
    eng, hist = content_engine
    held = hist[hist["user_id"].isin(["u1", "u2", "u3"])]
    split = prepare_split(eng, hist, test_histories=held)
    assert split.protocol == "users" and set(split.test["user_id"]) == {"u1", "u2", "u3"}
    assert not {"u1", "u2", "u3"} & set(split.interactions.user_ids)


def test_bad_histories_give_one_error_line(content_engine, tmp_path):
    eng, _ = content_engine
    d = tmp_path / "idx"
    eng.save(d)
    runner = CliRunner()
    single = tmp_path / "single.csv"
    pd.DataFrame({"user_id": [f"u{i}" for i in range(40)], "position": 0,
                  "track_id": [f"t{i:04d}" for i in range(40)]}).to_csv(single, index=False)
    nowhere = tmp_path / "nowhere.csv"
    pd.DataFrame({"user_id": ["a", "a", "b"], "position": [0, 1, 0], "track_id": ["x", "y", "z"]}).to_csv(
        nowhere, index=False)
    for args, message in ((["--histories", str(single)], "no user has at least 2 plays"),
                          (["--histories", str(single), "--split", "users"], "too few to hold whole users"),
                          (["--histories", str(nowhere), "--split", "users"], "no play refers to a track")):
        r = runner.invoke(main, ["evaluate", "--index", str(d), *args])
        assert r.exit_code == 2, r.output
        assert message in r.output and "Traceback" not in r.output
    cat = tmp_path / "cat.csv"
    make_catalog(60).to_csv(cat, index=False)
    cfg = tmp_path / "engine.toml"
    cfg.write_text("[engine]\ngenre_probs = false\n[engine.index]\nn_clusters = 4\n")
    r = runner.invoke(main, ["build-index", "--catalog", str(cat), "--histories", str(single), "--config",
                             str(cfg), "--out", str(tmp_path / "idx_single")])
    assert r.exit_code == 0, r.output
    assert "fixed blend" in r.output and "nothing to learn a ranking from" in r.output
    r = runner.invoke(main, ["build-index", "--catalog", str(cat), "--histories", str(nowhere), "--config",
                             str(cfg), "--out", str(tmp_path / "idx_nowhere")])
    assert r.exit_code == 2 and "error: histories: no play refers to a catalogue track" in r.output
    assert "Traceback" not in r.output
