"""Ranking metrics, leave-last-out without leakage, and the hybrid beside its baselines."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.engine import Engine
from recsys.errors import InputError
from recsys.evaluate import evaluate, leave_last_out, rank_metrics
from recsys.sources import Content, Interactions, SourceData, make_source
from recsys.testing.engine import fast_config, make_catalog, planted_histories


def test_rank_metrics_by_hand():
    m = rank_metrics([[5, 1, 2], [3, 4, 9], [7, 8, 6]], [1, 9, 0], k=3)
    assert m["hit@3"] == pytest.approx(2 / 3)
    assert m["mrr@3"] == pytest.approx((1 / 2 + 1 / 3) / 3)
    assert m["ndcg@3"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / 3)
    assert rank_metrics([[1, 2]], [2], k=1)["hit@1"] == 0


def test_leave_last_out_holds_out_last_play_only():
    h = pd.DataFrame({"user_id": ["a"] * 4 + ["b"] * 1 + ["c"] * 3, "position": [0, 1, 2, 3, 0, 0, 1, 2],
                      "track_id": list("wxyz") + ["q"] + list("rst"),
                      "skipped": [False, False, False, False, False, False, False, True]})
    train, test = leave_last_out(h)
    assert dict(zip(test["user_id"], test["target"])) == {"a": "z", "c": "s"}  # skipped play is not a target
    assert "z" not in set(train[train.user_id == "a"]["track_id"])
    assert "q" in set(train["track_id"])  # single-play users stay in training


def test_itemknn_scores_cooccurrence():
    train = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u3"], "position": [0, 1, 0, 1, 0],
                          "track_id": ["a", "b", "a", "b", "c"]})
    row_of = {"a": 0, "b": 1, "c": 2}
    content = Content(embeddings=np.eye(3, dtype=np.float32), index=None, clusters=np.zeros(3, int),
                      labels=np.array(list("abc"), dtype=object))
    data = SourceData(content, Interactions.from_histories(train, row_of, 3))
    knn = make_source("itemknn").fit(data)
    assert knn.recommend([0], 2).rows.tolist() == [1]


@pytest.fixture(scope="module")
def engine_and_histories(tmp_path_factory):
    cat = make_catalog(240)
    hist = planted_histories(cat, n_users=150)
    cfg = fast_config(genre_probs=False)
    cfg.recommend.ranker.min_users = 50  # small seeded data: train the ranker all the same
    cfg.recommend.ranker.guard = False  # planted chains: sources are perfect, the guard would serve one
    eng = Engine.build(cat, histories=hist, config=cfg, seed=0)
    return eng, hist


def test_evaluate_hybrid_beside_baselines(engine_and_histories):
    eng, hist = engine_and_histories
    table, info = evaluate(eng, hist, k=10)
    assert ({"hybrid", "blend", "rules", "content", "itemknn", "vsknn", "als", "artist", "popularity"}
            <= set(table["method"]))
    assert info["test_users"] == 150
    assert info["recommender"]["mode"] == "lightgbm" and info["ranker_seconds"] > 0
    assert 0 < info["candidate_recall"] <= 1 and info["latency"]["hybrid"]["p99_ms"] > 0
    got = table.set_index("method")
    # the planted A -> B -> C chains make the last play predictable from the previous one
    assert got.loc["hybrid", "hit@10"] > got.loc["popularity", "hit@10"]
    assert got.loc["hybrid", "hit@10"] >= got.loc["itemknn", "hit@10"]
    assert got.loc["hybrid", "hit@10"] >= got.loc["blend", "hit@10"]
    cols = ["hit@10", "mrr@10", "ndcg@10", "coverage"]
    assert ((got[cols] >= 0) & (got[cols] <= 1)).all().all()
    assert (got["mrr@10"] <= got["hit@10"] + 1e-12).all()


def test_evaluate_rules_only_see_training(engine_and_histories, monkeypatch):
    eng, hist = engine_and_histories
    import recsys.sources.assoc as assoc

    seen = []  # every mining call: the rules source mines on each fit (final, ranker folds)
    real = assoc.mine_rules

    def spy(train, config):
        seen.append(train)
        return real(train, config)

    monkeypatch.setattr(assoc, "mine_rules", spy)
    evaluate(eng, hist, k=5, max_users=20)
    total = hist.groupby("user_id").size()
    assert seen
    for train in seen:  # each user's last play is held out: no mining call sees all of a user's plays
        mined = train.groupby("user_id").size()
        assert (mined <= total[mined.index] - 1).all()


def test_evaluate_bad_histories(engine_and_histories):
    eng, _ = engine_and_histories
    with pytest.raises(InputError, match="no play refers"):
        evaluate(eng, pd.DataFrame({"user_id": ["a"], "position": [0], "track_id": ["missing"]}))
    with pytest.raises(InputError, match="at least 2 plays"):
        evaluate(eng, pd.DataFrame({"user_id": ["a", "b"], "position": [0, 0],
                                    "track_id": ["t0001", "t0002"]}))
