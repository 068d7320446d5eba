"""Candidate sources: one interface, each usable alone, save/load round trip, no recent row returned."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.errors import InputError
from recsys.index import IndexConfig, TrackIndex
from recsys.recommend import RecommendConfig
from recsys.rules import RulesConfig, mine_rules
from recsys.sources import SOURCES, Content, Interactions, SourceData, make_source


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 120
    X = rng.normal(size=(n, 8)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    idx = TrackIndex(IndexConfig(kind="flat", n_clusters=6)).fit(X)
    ids = np.array([f"t{i:03d}" for i in range(n)], dtype=object)
    rows = []
    for u in range(80):  # chains 0->1->2, 3->4->5, ... : the next track is predictable
        start = 3 * int(rng.integers(0, 30))
        for p, t in enumerate(range(start, start + 3)):
            rows.append((f"u{u}", p, ids[t]))
    h = pd.DataFrame(rows, columns=["user_id", "position", "track_id"])
    row_of = {t: i for i, t in enumerate(ids)}
    content = Content(embeddings=X, index=idx, clusters=idx.clusters_, labels=ids,
                      meta={"artist": np.arange(n) // 4, "album": np.arange(n) // 2})
    return SourceData(content, Interactions.from_histories(h, row_of, n))


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_source_recommends_alone_and_never_returns_recent(data, name):
    src = make_source(name, RecommendConfig()).fit(data)
    got = src.recommend([0, 5], 5, reasons=True)
    assert 0 < len(got) <= 5
    assert not {0, 5} & set(got.rows.tolist())
    assert np.all(np.diff(got.scores) <= 1e-12)  # best first
    assert all(isinstance(r, list) for r in got.reasons)


@pytest.mark.parametrize("name", ["itemknn", "rp3beta", "sequence", "vsknn", "rules", "ease"])
def test_collaborative_sources_find_the_planted_next_track(data, name):
    src = make_source(name).fit(data)
    assert src.recommend([0, 1], 3).rows[0] == 2
    assert src.explain(src.context([0, 1]), 2)


def test_als_folds_in_an_unseen_context(data):
    als = make_source("als").fit(data)
    top = als.recommend([3, 4], 10).rows.tolist()
    assert 5 in top  # the chain's third track, from factors alone


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_save_load_round_trip(data, name, tmp_path):
    """The contract every registered source keeps: what it saves, it loads back to the same rankings."""
    src = make_source(name).fit(data)
    src.save(tmp_path)
    back = type(src).load(tmp_path, data, src.config)
    for recent in ([0, 1], [7], [30, 31, 60]):
        a, b = src.recommend(recent, 5, reasons=True), back.recommend(recent, 5, reasons=True)
        assert a.rows.tolist() == b.rows.tolist()
        assert np.allclose(a.scores, b.scores) and a.reasons == b.reasons


def test_rules_source_mines_its_own_rules_with_its_own_config(data):
    """Rules are an ordinary source: fitted on a part of the plays, it mines that part alone."""
    src = make_source("rules", RecommendConfig()).fit(data)
    hist = data.interactions.to_histories(data.content.labels)
    assert src.table.equals(mine_rules(hist, RulesConfig())) and len(src.table)
    # its settings are its own (TOML [engine.recommend.sources.rules.mining])
    strict = make_source("rules", RecommendConfig(sources={"rules": {"mining": {"sequential": False,
                                                                                "min_confidence": 0.99}}}))
    assert set(strict.fit(data).table["kind"]) <= {"assoc"} and len(strict.table) < len(src.table)
    # fitted on the first 40 users only, no rule mentions a track only the others played
    inter = data.interactions
    part = type(data)(data.content, inter.subset(inter.users < 40))
    seen = set(part.interactions.to_histories(data.content.labels)["track_id"])
    sub = make_source("rules", RecommendConfig()).fit(part).table
    assert {t for a, c in zip(sub["antecedents"], sub["consequents"]) for t in (*a, *c)} <= seen


def test_each_source_owns_its_settings_merged_over_its_defaults(tmp_path):
    """RecBole-style: [engine.recommend.sources.NAME] is merged over that source's Config defaults."""
    from recsys.config import load_section
    from recsys.engine import EngineConfig
    from recsys.sources import check_sources

    toml = tmp_path / "engine.toml"
    toml.write_text('[engine.recommend.sources.vsknn]\nk = "100"\n'
                    '[engine.recommend.sources.rules.mining]\nmin_confidence = 0.2\n')
    cfg = load_section(toml, "engine", EngineConfig).recommend
    v = make_source("vsknn", cfg).settings
    assert (v.k, v.weighting, v.weight, v.candidates) == (100, "linear", 0.0, 100)  # "100" parsed to int
    r = make_source("rules", cfg).settings
    assert r.mining.min_confidence == 0.2 and r.mining.max_len == 3 and r.weight == 1.5
    assert make_source("itemknn", cfg).settings.neighbours == 100  # untouched sources keep their defaults
    with pytest.raises(InputError, match="recommend.sources.vsknn.*unknown option.*kk"):
        check_sources(RecommendConfig(sources={"vsknn": {"kk": 3}}))
    with pytest.raises(InputError, match="unknown source 'nope'"):
        check_sources(RecommendConfig(sources={"nope": {}}))
    with pytest.raises(InputError, match="recommend.sources.ease.lam"):
        check_sources(RecommendConfig(sources={"ease": {"lam": "big"}}))
    # the ranker has its own table too; the old flat key is a clear error, not a string in its place
    toml.write_text('[engine.recommend.ranker]\nmode = "blend"\nfolds = "3"\n')
    ranker = load_section(toml, "engine", EngineConfig).recommend.ranker
    assert (ranker.mode, ranker.folds, ranker.guard) == ("blend", 3, True)
    toml.write_text('[engine.recommend]\nranker = "blend"\n')
    with pytest.raises(InputError, match="recommend.ranker: expected a table of RankerConfig"):
        load_section(toml, "engine", EngineConfig)


def test_unknown_source_and_empty_context_are_clear():
    with pytest.raises(InputError, match="unknown candidate source"):
        make_source("nope")
    with pytest.raises(InputError, match="at least one recent track"):
        make_source("content").context([])


def test_sources_without_histories_only_content():
    from recsys.rank import fit_sources

    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    idx = TrackIndex(IndexConfig(kind="flat", n_clusters=3)).fit(X)
    content = Content(embeddings=X, index=idx, clusters=idx.clusters_, labels=np.arange(30).astype(str))
    got = fit_sources(SourceData(content), RecommendConfig())
    assert set(got) == {"content", "cluster", "artist", "album"}


def test_ease_is_steck_closed_form():
    import scipy.sparse as sp

    from recsys.sources.ease import ease_weights

    rng = np.random.default_rng(3)
    X = (rng.random((40, 7)) < 0.4).astype(np.float32)
    B = ease_weights(sp.csr_matrix(X), 5.0)
    assert np.allclose(np.diag(B), 0)
    # each column j is the ridge regression of item j on the other items (Steck 2019, eq. 8)
    for j in range(7):
        others = [i for i in range(7) if i != j]
        A = X[:, others]
        w = np.linalg.solve(A.T @ A + 5.0 * np.eye(6), A.T @ X[:, j])
        assert np.allclose(B[others, j], w, atol=1e-4)


def test_rp3beta_is_the_three_step_walk_with_a_popularity_penalty():
    import scipy.sparse as sp

    from recsys.sources.itemknn import rp3beta_knn

    rng = np.random.default_rng(4)
    X = (rng.random((30, 6)) < 0.4).astype(np.float64)
    X[0] = 1  # every item played at least once
    X = X[X.sum(1) > 0]  # and every user played something
    alpha, beta = 0.7, 0.4
    # written out from the definition (Paudel et al. 2017): P(i -> u) P(u -> j), each ^alpha, / pop(j)^beta
    Pui = X / X.sum(1, keepdims=True)
    Piu = (X / X.sum(0, keepdims=True)).T
    W = (Piu ** alpha) @ (Pui ** alpha) / X.sum(0) ** beta
    np.fill_diagonal(W, 0)
    got = rp3beta_knn(sp.csr_matrix(X.astype(np.float32)), 6, alpha=alpha, beta=beta).toarray()
    assert np.allclose(got, W, rtol=1e-5)
    # pruning keeps each row's k largest
    top2 = rp3beta_knn(sp.csr_matrix(X.astype(np.float32)), 2, alpha=alpha, beta=beta).toarray()
    assert ((top2 > 0).sum(1) <= 2).all()
    assert np.allclose(top2.max(1), W.max(1), rtol=1e-5)


def test_rp3beta_reasons_read_like_item_knn(data):
    from recsys.playlist import plain_reason

    src = make_source("rp3beta").fit(data)
    why = src.explain(src.context([0, 1]), 2)
    assert why.startswith("often in the same playlists as t001 (RP3beta 0.")
    assert plain_reason(why, {"t001": "Tiny Dancer"}.get) == "Often in the same playlists as “Tiny Dancer”"


def test_rp3beta_beta_lets_a_niche_track_beat_the_hit():
    """A hit in every playlist against a niche track always played with the query: beta decides."""
    import scipy.sparse as sp

    from recsys.sources.itemknn import rp3beta_knn

    X = np.zeros((20, 3), np.float32)
    X[:, 1] = 1  # item 1: the hit, in all 20 playlists
    X[:4, 0] = 1  # the query item 0 is in 4 of them ...
    X[:3, 2] = 1  # ... and the niche item 2 in 3 of those
    plain = rp3beta_knn(sp.csr_matrix(X), 2, alpha=1.0, beta=0.0).toarray()
    penal = rp3beta_knn(sp.csr_matrix(X), 2, alpha=1.0, beta=0.5).toarray()
    assert plain[0, 1] > plain[0, 2]  # the walk alone lands on the hit more often
    assert penal[0, 2] > penal[0, 1]  # the penalty puts the niche track first


def test_ease_keeps_the_most_played_items_only(data):
    src = make_source("ease", RecommendConfig(sources={"ease": {"max_items": 10}})).fit(data)
    counts = data.interactions.popularity()
    assert len(src.items_) == 10 and counts[src.items_].min() >= np.sort(counts)[-10]


def test_tuning_scores_held_out_users_and_records_the_choice(data):
    from recsys.sources.tune import next_track_queries, pick_users, tune_sources, without_users

    rng = np.random.default_rng(0)
    val = pick_users(data.interactions, 0.25, rng)
    assert len(val) == 20
    fit = without_users(data.interactions, val)
    assert not set(np.unique(fit.users).tolist()) & set(val.tolist())
    queries = next_track_queries(data.interactions, val, rng)
    assert queries and all(len(ctx) >= 1 for ctx, _ in queries)
    cfg, report = tune_sources(data, RecommendConfig(tune_seconds=30), ["itemknn", "ease", "content"],
                               val_users=val, seed=0)
    assert set(report["sources"]) == {"itemknn", "ease"}  # content has nothing to tune
    rep = report["sources"]["ease"]
    assert make_source("ease", cfg).settings.lam == rep["lam"]
    assert rep["tried"] >= 2 and 0 <= rep["hr@10"] <= 1
