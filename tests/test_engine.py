"""Engine: build -> save -> load -> recommend / similar / cluster_of, bad input, atomic saves."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from recsys.engine import FORMAT_VERSION, Engine
from recsys.errors import IndexFormatError, InputError

from recsys.testing.engine import fast_config, make_catalog, planted_histories


@pytest.fixture(scope="module")
def catalog():
    return make_catalog(240)


@pytest.fixture(scope="module")
def built(tmp_path_factory, catalog):
    out = tmp_path_factory.mktemp("idx") / "index"
    hist = planted_histories(catalog)
    eng = Engine.build(catalog, histories=hist, out=out, config=fast_config(genre_probs=False), seed=0)
    return eng, out, hist


def test_build_save_load_roundtrip(built):
    eng, out, _ = built
    for name in ("manifest.json", "tracks.parquet", "embeddings.npy", "faiss.index", "clusters.npy",
                 "rules.parquet"):
        assert (out / name).exists(), name
    man = json.loads((out / "manifest.json").read_text())
    assert man["format_version"] == FORMAT_VERSION and man["counts"]["tracks"] == 240
    loaded = Engine.load(out)
    assert np.allclose(loaded.embeddings, eng.embeddings)
    norms = np.linalg.norm(loaded.embeddings, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    recent = ["t0000", "t0001"]
    a = [(r.track_id, round(r.score, 5)) for r in eng.recommend(recent, k=8)]
    b = [(r.track_id, round(r.score, 5)) for r in loaded.recommend(recent, k=8)]
    assert a == b


def test_recommend_follows_planted_chain_and_excludes_recent(built):
    eng, _, _ = built
    recs = eng.recommend(["t0000", "t0001"], k=10)
    ids = [r.track_id for r in recs]
    assert "t0000" not in ids and "t0001" not in ids
    assert ids[0] == "t0002"  # the chain t0000 -> t0001 -> t0002 is in every history
    assert any(w.startswith(("rule", "next")) for w in recs[0].reasons)
    assert all(r.reasons for r in recs)
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)


def test_cold_tracks_reachable_through_content(built, catalog):
    eng, _, hist = built
    cold = set(catalog["track_id"]) - set(hist["track_id"])
    assert cold
    hits = []
    for t in sorted(cold)[:10]:
        row = eng.tracks.row(t)
        # the nearest played track to a cold one: recommending after it should surface cold tracks
        _, nb = eng.index.search(eng.embeddings[row], 5)
        for r in nb[0]:
            tid = eng.tracks.ids[r]
            if tid not in cold:
                recs = eng.recommend([tid], k=20)
                hits += [x for x in recs if x.track_id in cold]
                break
    assert hits, "no never-played track was ever recommended"
    assert any(any(w.startswith(("neighbour", "close to", "same cluster", "same artist")) for w in x.reasons)
               for x in hits)


def test_unknown_recent_ids_warn_and_all_unknown_fail(built):
    eng, _, _ = built
    with pytest.warns(UserWarning, match="unknown track id"):
        recs = eng.recommend(["nope", "t0003"], k=3)
    assert len(recs) == 3
    with pytest.raises(InputError, match="none of the recent track ids"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eng.recommend(["nope", "nada"], k=3)
    with pytest.raises(InputError):
        eng.recommend([], k=3)


def test_recommend_by_user_id(built):
    eng, _, hist = built
    user = hist["user_id"].iloc[0]
    recs = eng.recommend(user_id=user, k=5)
    assert len(recs) == 5
    last = set(hist[hist.user_id == user]["track_id"].tail(eng.config.recommend.max_recent))
    assert not last & {r.track_id for r in recs}
    with pytest.raises(InputError, match="unknown user"):
        eng.recommend(user_id="nobody")


def test_similar_and_cluster_of(built):
    eng, _, _ = built
    sims = eng.similar("t0005", k=5)
    assert len(sims) == 5 and "t0005" not in [s.track_id for s in sims]
    assert [s.score for s in sims] == sorted((s.score for s in sims), reverse=True)
    # same-genre tracks (every 4th id) dominate the neighbours of a clustered synthetic catalogue
    genre = lambda t: int(t[1:]) % 4  # noqa: E731
    assert sum(genre(s.track_id) == genre("t0005") for s in sims) >= 4
    c = eng.cluster_of("t0005")
    assert 0 <= c < eng.index.n_clusters
    assert "t0005" in eng.cluster_members(c)
    with pytest.raises(InputError):
        eng.similar("missing")


def test_add_tracks_without_rebuild(built, tmp_path):
    eng, out, _ = built
    loaded = Engine.load(out)
    n0 = loaded.n_tracks
    extra = make_catalog(8, seed=5)
    extra["track_id"] = [f"new{i}" for i in range(8)]
    assert loaded.add_tracks(extra) == 8
    assert loaded.n_tracks == n0 + 8 and loaded.index.ntotal == n0 + 8
    assert loaded.similar("new0", k=3)
    assert loaded.cluster_of("new3") >= 0
    assert loaded.add_tracks(extra) == 0  # already indexed
    loaded.save(tmp_path / "grown")
    again = Engine.load(tmp_path / "grown")
    assert again.n_tracks == n0 + 8 and "new7" in again.tracks


def test_incompatible_or_truncated_index_is_clear_error(built, tmp_path):
    _, out, _ = built
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    man = json.loads((bad / "manifest.json").read_text())
    man["format_version"] = 999
    (bad / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(IndexFormatError, match="version 999"):
        Engine.load(bad)
    trunc = tmp_path / "trunc"
    shutil.copytree(out, trunc)
    data = (trunc / "embeddings.npy").read_bytes()
    (trunc / "embeddings.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFormatError, match="truncated"):
        Engine.load(trunc)
    (trunc / "manifest.json").write_text("{not json")
    with pytest.raises(IndexFormatError):
        Engine.load(trunc)
    with pytest.raises(IndexFormatError):
        Engine.load(tmp_path / "nothing-here")


def test_interrupted_build_leaves_previous_index(built, catalog, monkeypatch):
    eng, out, _ = built
    before = (out / "manifest.json").read_bytes()
    from recsys import index as index_mod

    def boom(self, directory):
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(index_mod.TrackIndex, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        Engine.build(catalog, simulate_users=10, out=out, config=fast_config(genre_probs=False))
    monkeypatch.undo()
    assert (out / "manifest.json").read_bytes() == before
    assert Engine.load(out).n_tracks == 240
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".building")]


def test_empty_histories_error(catalog, tmp_path):
    empty = tmp_path / "h.csv"
    empty.write_text("user_id,position,track_id\n")
    with pytest.raises(InputError, match="empty"):
        Engine.build(catalog, histories=empty, config=fast_config(genre_probs=False))
    other = pd.DataFrame({"user_id": ["a", "a"], "position": [0, 1], "track_id": ["zz1", "zz2"]})
    with pytest.raises(InputError, match="no play refers"):
        Engine.build(catalog, histories=other, config=fast_config(genre_probs=False))


def test_genre_probabilities_enter_tabular_block(catalog, tmp_path):
    pytest.importorskip("recsys.genres.tabular")
    eng = Engine.build(catalog, simulate_users=30, out=tmp_path / "g", config=fast_config(), seed=1)
    classes = eng.genre_classes
    assert classes and set(classes) <= {"pop", "rock", "hip-hop", "electronic"}
    cols = eng.builder.columns("tabular")
    assert [c for c in cols if c.startswith("p_")] == [f"p_{c}" for c in classes]
    assert (tmp_path / "g" / "genre_model" / "manifest.json").exists()
    loaded = Engine.load(tmp_path / "g")
    assert loaded.genre_model is not None
    extra = make_catalog(4, seed=9)
    extra["track_id"] = ["x1", "x2", "x3", "x4"]
    assert loaded.add_tracks(extra) == 4


def test_synthetic_users_by_default(catalog):
    eng = Engine.build(catalog, config=fast_config(genre_probs=False), seed=3)
    assert eng.summary()["users"] == eng.config.simulation.n_users == 500
    assert eng.summary()["rules"] > 0


def test_block_ablation_changes_embedding(catalog):
    a = Engine.build(catalog, simulate_users=0, config=fast_config(genre_probs=False))
    assert a.embeddings.shape == (240, 15)  # 12 stats with key as sin/cos, release year, popularity
    cfg = fast_config(genre_probs=False)
    cfg.embedding.metadata = False
    assert Engine.build(catalog, simulate_users=0, config=cfg).embeddings.shape == (240, 13)
    assert a.summary()["rules"] == 0
    assert a.recommend(["t0001"], k=3)  # content-only still works without histories
    with pytest.raises(InputError, match="unknown block"):
        Engine.build(catalog, blocks=["tabular", "nonsense"], config=fast_config(genre_probs=False))


def test_demo_data_end_to_end(demo_csv, tmp_path):
    eng = Engine.build(demo_csv, simulate_users=60, out=tmp_path / "demo", config=fast_config(), seed=0)
    tid = eng.tracks.frame["track_id"].iloc[0]
    recs = Engine.load(tmp_path / "demo").recommend([tid], k=10)
    assert len(recs) == 10 and recs[0].track_name


def test_user_supplied_genre_model_for_unlabelled_catalogue(catalog, tmp_path):
    tab = pytest.importorskip("recsys.genres.tabular")
    from recsys.catalog import load_catalog

    labelled = load_catalog(catalog)
    model = tab.GenreClassifier(random_state=0, n_estimators=10, num_leaves=7)
    model.fit(tab.tabular_features(labelled), labelled["parent_genre"]).save(tmp_path / "gm")
    unlabelled = catalog.drop(columns=["playlist_genre"])
    eng = Engine.build(unlabelled, genre_model=tmp_path / "gm", config=fast_config())
    assert eng.genre_classes == [str(c) for c in model.classes_]
    no_model = Engine.build(unlabelled, config=fast_config())
    assert not no_model.genre_classes  # no labels and no model: statistics only
    assert eng.embeddings.shape[1] == no_model.embeddings.shape[1] + len(model.classes_)


def test_recommend_weights_override_ablates_sources(built):
    eng, _, _ = built
    only_rules = eng.recommend(["t0000", "t0001"], k=5, weights={"content": 0, "cluster": 0,
                                                                 "artist": 0, "album": 0,
                                                                 "popularity": 0})
    assert only_rules and all(all(w.startswith(("rule", "next")) for w in r.reasons) for r in only_rules)
    content = eng.recommend(["t0000"], k=5, weights={"rules": 0, "cluster": 0, "artist": 0,
                                                     "album": 0})
    assert all(any(w.startswith(("neighbour", "close to")) for w in r.reasons) for r in content)


def test_genre_cache_reused_between_builds(catalog, tmp_path, monkeypatch):
    pytest.importorskip("recsys.genres.tabular")
    import recsys.genres.oof as blocks

    a = Engine.build(catalog, simulate_users=0, config=fast_config(), cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("genre-*"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("genre model retrained despite the cache")

    monkeypatch.setattr(blocks, "genre_probabilities", no_training)
    b = Engine.build(catalog, simulate_users=0, config=fast_config(), cache_dir=tmp_path / "cache")
    assert np.allclose(a.embeddings, b.embeddings)
    changed = catalog.copy()
    changed.loc[0, "energy"] = 0.5
    with pytest.raises(AssertionError, match="retrained"):
        Engine.build(changed, simulate_users=0, config=fast_config(), cache_dir=tmp_path / "cache")
