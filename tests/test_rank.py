"""The learned ranker: trained without leakage, chosen only with enough users, saved as LightGBM text."""
from __future__ import annotations

import numpy as np
import pytest

from recsys.engine import Engine
from recsys.errors import IndexFormatError
from recsys.rank import choose_mode, training_queries
from recsys.recommend import RecommendConfig
from recsys.sources import Interactions
from recsys.testing.engine import fast_config, make_catalog, planted_histories


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("rank")
    cat = make_catalog(240)
    hist = planted_histories(cat, n_users=120)
    cfg = fast_config(genre_probs=False)
    cfg.recommend.min_ranker_users = 50
    eng = Engine.build(cat, histories=hist, config=cfg, seed=0, out=d / "idx")
    return eng, hist, d / "idx"


def test_training_queries_remove_target_and_later_plays():
    import pandas as pd

    h = pd.DataFrame({"user_id": ["a"] * 6 + ["b"] * 1, "position": list(range(6)) + [0],
                      "track_id": ["x0", "x1", "x2", "x3", "x4", "x5", "x0"]})
    row_of = {f"x{i}": i for i in range(6)}
    inter = Interactions.from_histories(h, row_of, 6)
    keep, queries = training_queries(inter, RecommendConfig(), np.random.default_rng(0))
    assert queries and {u for u, _, _ in queries} == {0}  # b has a single play: no query
    kept_a = inter.items[keep & (inter.users == 0)].tolist()
    for _, ctx, target in queries:
        assert target not in kept_a  # no target (nor what follows the cut) trains the sources
        assert ctx.tolist()[:len(kept_a)] == kept_a  # contexts start with the kept plays
    assert any(t == 5 for _, _, t in queries)  # the last play is always a target


def test_mode_follows_number_of_users(built):
    eng, _, _ = built
    assert eng.recommender.mode == "lightgbm"
    assert choose_mode(eng.recommender.data, RecommendConfig())[0] == "blend"  # 120 users < 200


def test_ranked_recommendations_with_reasons_survive_save_load(built):
    eng, _, d = built
    recs = eng.recommend(["t0000", "t0001"], k=5)
    assert recs[0].track_id == "t0002" and recs[0].reasons
    assert (d / "ranker.txt").read_text().startswith("tree")
    back = Engine.load(d)
    assert back.recommender.mode == "lightgbm"
    assert [r.track_id for r in back.recommend(["t0000", "t0001"], k=5)] == [r.track_id for r in recs]


def test_weights_use_the_blend_without_refitting(built):
    eng, _, _ = built
    rec = eng.recommender
    only_content = eng.recommend(["t0000"], k=5, weights={"w_rules": 0, "w_cluster": 0, "w_artist": 0,
                                                          "w_album": 0, "w_popularity": 0})
    assert eng.recommender is rec
    assert all(any("neighbour" in w or "recent mix" in w for w in r.reasons) for r in only_content)


def test_truncated_ranker_is_refused(built, tmp_path):
    import shutil

    _, _, d = built
    from recsys.rank import Ranker

    shutil.copy(d / "ranker.txt", tmp_path / "ranker.txt")
    (tmp_path / "ranker.txt").write_text((tmp_path / "ranker.txt").read_text()[:200])
    with pytest.raises(IndexFormatError, match="truncated"):
        Ranker.load(tmp_path)


def test_bad_histories_fall_back_or_fail_clearly(caplog):
    import pandas as pd

    from recsys.errors import InputError

    cat = make_catalog(60)
    cfg = fast_config(genre_probs=False)
    one_user = pd.DataFrame({"user_id": "u", "position": range(5),
                             "track_id": [f"t{i:04d}" for i in range(5)]})
    eng = Engine.build(cat, histories=one_user, config=cfg, seed=0)
    assert eng.recommender.mode == "blend" and "1 user" in eng.recommender.info["why"]
    assert eng.recommend(["t0001"], k=3)
    single_plays = pd.DataFrame({"user_id": [f"u{i}" for i in range(30)], "position": 0,
                                 "track_id": [f"t{i:04d}" for i in range(30)]})
    eng = Engine.build(cat, histories=single_plays, config=cfg, seed=0)
    assert eng.recommender.mode == "blend" and eng.recommend(["t0001"], k=3)
    with caplog.at_level("WARNING"):
        mixed = pd.concat([one_user, pd.DataFrame({"user_id": ["u"], "position": [9], "track_id": ["nope"]})])
        assert Engine.build(cat, histories=mixed, config=cfg, seed=0).summary()["unknown_plays"] == 1
    assert "not in the catalogue were ignored" in caplog.text
    with pytest.raises(InputError, match="no play refers to a catalogue track"):
        Engine.build(cat, histories=pd.DataFrame({"user_id": ["u"], "position": [0], "track_id": ["x"]}),
                     config=cfg, seed=0)


def test_index_of_an_older_format_is_refused_with_rebuild(built, tmp_path):
    import json
    import shutil

    _, _, d = built
    old = tmp_path / "old"
    shutil.copytree(d, old)
    man = json.loads((old / "manifest.json").read_text())
    man["format_version"] = man["format_version"] - 1
    (old / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(IndexFormatError, match="rebuild"):
        Engine.load(old)
