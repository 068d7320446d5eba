"""The batch API: recommend_many answers exactly what a loop of recommend answers, and fails the same way."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from recsys.engine import Engine
from recsys.errors import InputError
from recsys.rank import HybridRecommender, RankQuery, Ranker
from recsys.recommend import RecommendConfig
from recsys.testing.engine import planted_engine


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return planted_engine(tmp_path_factory.mktemp("many") / "idx")


def _contexts(eng: Engine, hist) -> list[list[str]]:
    """Contexts of many lengths: users' plays but the last, single tracks, and a never-played track."""
    plays = [g["track_id"].tolist() for _, g in hist.groupby("user_id", sort=False)]
    rng = np.random.default_rng(1)
    out = [p[:-1] for p in plays[:25]]
    out += [p[:int(rng.integers(1, len(p)))] for p in plays[25:45]]
    out += [[eng.tracks.ids[-1]], [eng.tracks.ids[0], eng.tracks.ids[-3]]]  # cold catalogue tail
    return out


def _same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.rows, y.rows)
        np.testing.assert_array_equal(x.scores, y.scores)  # bit for bit (NaN equal to NaN)
        assert x.reasons == y.reasons


@pytest.mark.parametrize("cut", [(0, 100), (2, 5)])  # cascade off; on, with a small keep so it cuts
def test_hybrid_recommend_many_is_the_loop(built, cut):
    eng, hist = built
    rec = eng.recommender
    assert rec.mode == "lightgbm" and rec.ranker.best_iteration_ >= 2 * 2
    rows = [eng.tracks.rows(c)[0] for c in _contexts(eng, hist)]
    saved = (rec.config.ranker.cut_trees, rec.config.ranker.cut_keep, dict(rec.info))
    try:
        rec.config.ranker.cut_trees, rec.config.ranker.cut_keep = cut
        rec.info["cold_slots"], rec.info["cold_gate"] = 1, 1.01  # every context keeps a cold place
        for k in (1, 7):
            for reasons in (False, True):
                loop = [rec.recommend(r, k, reasons=reasons) for r in rows]
                for batch in (1, 4, 64):
                    _same(rec.recommend_many(rows, k, reasons=reasons, batch=batch), loop)
        assert any(len(x.reasons[0]) > 1 for x in loop)  # several sources explain a row
        ex = [rows[0][0]]
        _same(rec.recommend_many(rows, 5, exclude=ex), [rec.recommend(r, 5, exclude=ex) for r in rows])
    finally:
        rec.config.ranker.cut_trees, rec.config.ranker.cut_keep, rec.info = saved


def test_blend_and_single_source_modes_are_the_loop(built):
    eng, hist = built
    rec = eng.recommender
    rows = [eng.tracks.rows(c)[0] for c in _contexts(eng, hist)]
    for kw in ({"mode": "blend"}, {"weights": {"content": 1.0, "popularity": 0.2}}):
        _same(rec.recommend_many(rows, 6, reasons=True, **kw),
              [rec.recommend(r, 6, reasons=True, **kw) for r in rows])
    alone = HybridRecommender(rec.config, rec.sources, rec.data, None, {**rec.info, "serve": "itemknn"})
    assert alone.mode == "source"
    _same(alone.recommend_many(rows, 6, reasons=True), [alone.recommend(r, 6, reasons=True) for r in rows])


def test_engine_recommend_many_is_the_loop(built):
    eng, hist = built
    contexts = _contexts(eng, hist) + [["t0003", "no-such-track"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loop = [eng.recommend(c, 10) for c in contexts]
        many = eng.recommend_many(contexts, 10)
    assert [[r.to_dict() for r in x] for x in many] == [[r.to_dict() for r in x] for x in loop]
    assert [x.note for x in many] == [x.note for x in loop]
    assert all(len(x) == 10 and all(r.reasons for r in x) for x in many)
    assert eng.recommend_many([], 10) == []
    with pytest.warns(UserWarning, match="1 unknown track id"):
        eng.recommend_many([["t0003", "no-such-track"]], 3)


@pytest.mark.parametrize("bad", [["nope"], [], "t0001", [1.5], [""]])
def test_bad_context_raises_what_recommend_raises(built, bad):
    eng, _ = built
    with pytest.raises(InputError) as one:
        eng.recommend(bad, 5)
    with pytest.raises(InputError) as many:
        eng.recommend_many([["t0001"], bad], 5)
    assert str(many.value) == f"contexts[1]: {one.value}"


def test_bad_arguments_raise_clean_errors(built):
    eng, _ = built
    for k in (0, "5", 10_000):
        with pytest.raises(InputError) as one:
            eng.recommend(["t0001"], k)
        with pytest.raises(InputError) as many:
            eng.recommend_many([["t0001"]], k)
        assert str(many.value) == str(one.value)
    with pytest.raises(InputError) as one:
        eng.recommend(["t0001"], 5, weights={"nope": 1.0})
    with pytest.raises(InputError) as many:
        eng.recommend_many([["t0001"]], 5, weights={"nope": 1.0})
    assert str(many.value) == str(one.value)
    for contexts in ("t0001", None, 3):
        with pytest.raises(InputError, match="contexts must be a list"):
            eng.recommend_many(contexts, 5)


def test_rank_many_stacks_queries_without_mixing_them():
    """One LightGBM call per stage over every query, each answer rank's own (cascade on and off)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.5 * rng.normal(size=3000) > 1.2).astype(int)
    cfg = RecommendConfig()
    cfg.ranker.rounds, cfg.ranker.min_leaf, cfg.ranker.cut_trees = 60, 5, 10
    ranker = Ranker(cfg).fit(X, y, np.full(100, 30), names=[f"f{i}" for i in range(6)])
    queries = []
    for n in (400, 30, 120, 1):
        cold = rng.random(n) < 0.3
        queries.append(RankQuery(rng.normal(size=(n, 6)), rng.integers(0, 3, n).astype(float),
                                 rng.permutation(n), 50, cold, 2))
    calls = []
    real = ranker.predict
    ranker.predict = lambda X, **kw: calls.append(len(X)) or real(X, **kw)
    got = ranker.rank_many(queries)
    assert len(calls) == 2 and calls[0] == 400 + 120  # the first stage: the queries above keep only
    ranker.predict = real
    for q, (order, score) in zip(queries, got):
        want_order, want_score = ranker.rank(q.X, q.ties, q.rows, q.keep, cold=q.cold, slots=q.slots)
        np.testing.assert_array_equal(order, want_order)
        np.testing.assert_array_equal(score, want_score)
        kept = np.flatnonzero(~np.isnan(score))  # scored by the whole model, bit for bit, best first
        full = ranker.predict(q.X)
        np.testing.assert_array_equal(score[kept], full[kept])
        best = kept[np.lexsort((q.rows[kept], -q.ties[kept], -full[kept]))]
        assert order[:len(kept)].tolist() == best.tolist()
    assert np.isnan(got[0][1]).sum() == 400 - 52  # cut: 50 kept and 2 cold slots scored


def test_content_cache_answers_what_one_faiss_search_answers(built):
    """Cached per-track FAISS answers give the neighbours one search over every query gives."""
    from recsys.sources.content import ContentSource

    eng, hist = built
    rec = eng.recommender
    src = ContentSource(rec.config).fit(rec.data)
    assert src.cache_.size > 0
    index, E = rec.data.content.index, rec.data.content.embeddings
    for _ in range(2):  # the second pass answers every recent track from the cache
        for c in _contexts(eng, hist):
            ctx = rec.context(eng.tracks.rows(c)[0])
            rows, w = ctx.recent(rec.config.max_recent)
            prof = (E[rows] * w[:, None].astype(np.float32)).sum(0, keepdims=True)
            extra = prof / float(np.linalg.norm(prof))
            k = src.settings.neighbours + len(rows)
            got = src.neighbours(rows, extra, k)
            want = index.search(np.vstack([E[rows], extra]), k)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
    assert src.cache_.hits >= src.cache_.misses > 0
    small = ContentSource(rec.config).fit(rec.data)
    small.cache_.size = 3
    for r in range(10):
        small.neighbours(np.asarray([r]), E[:0], 5)
    longest = src.settings.neighbours + rec.config.max_recent  # a flat index keeps one answer per track
    assert index.kind == "flat"
    assert list(small.cache_.entries) == [(r, longest, index.ntotal) for r in (7, 8, 9)]  # LRU dropped
    np.testing.assert_array_equal(small.neighbours(np.asarray([9]), E[:0], 5)[1], index.search(E[9:10], 5)[1])


def test_evaluate_batches_the_hybrid_and_gets_the_same_table(built):
    import pandas as pd

    from recsys import evaluate as ev

    eng, hist = built
    split = ev.prepare_split(eng, hist, k=10)
    assert len(split.recent) > ev.BATCH  # more than one batch
    rec = ev.split_recommender(eng, split)
    batched = ev.hybrid_methods(rec, sources=False)
    assert {"hybrid", "blend"} <= set(batched) and hasattr(batched["hybrid"], "many")
    loop = {"hybrid": lambda r, k: rec.recommend(r, k).rows.tolist(),
            "blend": lambda r, k: rec.recommend(r, k, mode="blend").rows.tolist()}
    assert batched["hybrid"].many(split.recent, 10) == [loop["hybrid"](r, 10) for r in split.recent]
    assert batched["blend"](split.recent[3], 10) == loop["blend"](split.recent[3], 10)
    table, timing = ev.run_methods({m: batched[m] for m in loop}, split)
    pd.testing.assert_frame_equal(table, ev.run_methods(loop, split)[0])
    assert timing["hybrid"]["batch"] == ev.BATCH and timing["hybrid"]["p50_ms"] > 0
