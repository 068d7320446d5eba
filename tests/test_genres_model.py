"""Tabular genre features, the GenreClassifier (LightGBM + DNN), persistence and grouped evaluation."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys.catalog import load_catalog
from recsys.schema import STATS
from recsys.errors import InputError, ModelError, SchemaError
from recsys.genres.evaluate import (artist_groups, confusion_text, genre_metrics, grouped_folds,
                                    save_confusion_png)
from recsys.genres.tabular import (FEATURES, META_FEATURES, GenreClassifier, pool_by_group, predict_table,
                                   tabular_features)
from recsys.genres.text import TEXT_COLUMN, TitleTextModel, clean_title


@pytest.fixture(scope="module")
def demo(demo_csv):
    cat = load_catalog(demo_csv)
    return cat[cat["parent_genre"].notna()].reset_index(drop=True)


@pytest.fixture(scope="module")
def demo_xy(demo):
    return tabular_features(demo), demo["parent_genre"].astype(str).to_numpy()


@pytest.fixture(scope="module")
def lgb_model(demo_xy):
    X, y = demo_xy
    return GenreClassifier(model="lightgbm", n_estimators=40).fit(X, y)


@pytest.fixture(scope="module")
def dnn_model(demo_xy):
    X, y = demo_xy
    return GenreClassifier(model="dnn", epochs=8, hidden=(32, 16)).fit(X, y)


# -- features ---------------------------------------------------------------------------------
def test_features_from_stats_only_gives_nan_metadata(demo):
    X = tabular_features(demo[list(STATS)])
    assert list(X.columns) == [*FEATURES, TEXT_COLUMN]
    assert (X[TEXT_COLUMN] == "").all()
    assert X[list(META_FEATURES)].isna().all().all()
    assert not X[list(STATS)].isna().all().any()


def test_features_from_metadata():
    df = pd.DataFrame({s: [0.5, 0.5] for s in STATS})
    df["track_name"] = ["Despacito - Remix (feat. Justin Bieber)", "Yesterday"]
    df["track_album_name"] = ["Despacito (Remixes)", "Help! (Remastered)"]
    df["track_album_release_date"] = ["2017-04-17", "1965"]
    df["track_popularity"] = [80, 70]
    X = tabular_features(df)
    assert X["release_year"].tolist() == [2017, 1965]
    assert X["release_date_precision"].tolist() == [2, 0]
    assert X["name_words"].tolist() == [6, 1]
    assert X["name_remix"].tolist() == [1, 0]
    assert X["name_feat"].tolist() == [1, 0]
    assert X["album_remaster"].tolist() == [0, 1]
    assert X["album_is_single"].tolist() == [1, 0]
    assert X["track_popularity"].tolist() == [80, 70]
    assert X[TEXT_COLUMN].tolist() == ["despacito - remix | despacito (remixes)",
                                       "yesterday | help! (remastered)"]


def test_features_never_use_artist_or_playlist():
    assert not any(("artist" in f) or ("playlist" in f) or ("genre" in f) for f in FEATURES)


def test_features_bad_input():
    df = pd.DataFrame({s: [0.5, 0.6] for s in STATS})
    with pytest.raises(SchemaError, match="missing column"):
        tabular_features(df.drop(columns=["tempo"]))
    bad = df.copy()
    bad["energy"] = ["loud", "0.3"]
    with pytest.raises(SchemaError, match="energy must be numeric"):
        tabular_features(bad)
    bad = df.copy()
    bad["valence"] = np.nan
    with pytest.raises(SchemaError, match="valence has no values"):
        tabular_features(bad)
    with pytest.raises(SchemaError, match="empty"):
        tabular_features(df.iloc[:0])


# -- estimator --------------------------------------------------------------------------------
def test_lightgbm_probabilities_follow_classes(lgb_model, demo_xy):
    X, y = demo_xy
    assert list(lgb_model.classes_) == sorted(set(y))
    assert lgb_model.input_features_ == list(FEATURES)
    assert lgb_model.feature_names_ == [*FEATURES, *[f"text_p_{c}" for c in lgb_model.classes_]]
    p = lgb_model.predict_proba(X.head(50))
    assert p.shape == (50, len(lgb_model.classes_))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert list(lgb_model.predict(X.head(50))) == list(lgb_model.classes_[p.argmax(axis=1)])


@pytest.mark.parametrize("kind", ["lightgbm", "dnn"])
def test_generalises_to_unseen_artists(demo, demo_xy, kind):
    """Trained on some artists, it must beat the majority class clearly on other artists."""
    X, y = demo_xy
    tr, te = grouped_folds(y, artist_groups(demo), n_splits=3, seed=0)[0]
    params = {"n_estimators": 60} if kind == "lightgbm" else {"epochs": 15, "hidden": (64, 32)}
    clf = GenreClassifier(model=kind, **params).fit(X.iloc[tr], y[tr])
    acc = float((clf.predict(X.iloc[te]) == y[te]).mean())
    majority = pd.Series(y[tr]).value_counts().index[0]
    assert acc > float((y[te] == majority).mean()) + 0.15


def test_missing_values_imputed_with_training_medians(lgb_model, demo_xy):
    X, _ = demo_xy
    holes = X.head(5).copy()
    holes["tempo"] = np.nan
    filled = holes.copy()
    filled["tempo"] = lgb_model.impute_medians_[list(FEATURES).index("tempo")]
    np.testing.assert_allclose(lgb_model.predict_proba(holes), lgb_model.predict_proba(filled))
    assert lgb_model.impute_medians_[list(FEATURES).index("tempo")] == pytest.approx(X["tempo"].median())


def test_smote_runs_only_in_fit_and_balances_training(demo_xy, monkeypatch):
    """SMOTE is a step of the fit pipeline: the estimator is fitted on balanced classes.

    predict sees the rows as given. The LightGBM estimator's own fit is spied on, so the test fails
    if SMOTE is dropped from the pipeline.
    """
    from lightgbm import LGBMClassifier

    seen: list[np.ndarray] = []
    original = LGBMClassifier.fit

    def spy(self, X, y, *args, **kwargs):
        seen.append(np.bincount(np.asarray(y)))
        return original(self, X, y, *args, **kwargs)

    monkeypatch.setattr(LGBMClassifier, "fit", spy)
    X, y = demo_xy
    big = [g for g in pd.Series(y).value_counts().index if g != "rock"][:2]
    keep = (np.flatnonzero(y == big[0])[:150].tolist() + np.flatnonzero(y == big[1])[:80].tolist()
            + np.flatnonzero(y == "rock")[:20].tolist())
    Xs, ys = X.iloc[keep], y[keep]
    on = GenreClassifier(n_estimators=20, text=False).fit(Xs, ys)
    off = GenreClassifier(n_estimators=20, text=False, smote=False).fit(Xs, ys)
    rock = list(on.classes_).index("rock")
    assert on.class_counts_["rock"] == 20 == off.class_counts_["rock"]  # the data as given
    fitted_on, fitted_off = seen
    assert fitted_off[rock] == 20 and len(set(fitted_off.tolist())) > 1
    # every class oversampled to the largest
    assert fitted_on[rock] > 20 and len(set(fitted_on.tolist())) == 1
    assert len(on.predict(Xs)) == len(Xs) and len(on.predict_proba(Xs.head(7))) == 7


def test_dnn_deterministic_with_seed(demo_xy):
    X, y = demo_xy
    Xh, yh = X.head(400), y[:400]
    a = GenreClassifier(model="dnn", epochs=3, hidden=(16,), random_state=3).fit(Xh, yh).predict_proba(Xh)
    b = GenreClassifier(model="dnn", epochs=3, hidden=(16,), random_state=3).fit(Xh, yh).predict_proba(Xh)
    c = GenreClassifier(model="dnn", epochs=3, hidden=(16,), random_state=4).fit(Xh, yh).predict_proba(Xh)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_dnn_has_required_layers(dnn_model):
    from torch import nn

    kinds = {type(m) for m in dnn_model.model_.net_.modules()}
    assert {nn.Linear, nn.BatchNorm1d, nn.LeakyReLU, nn.Dropout} <= kinds
    assert dnn_model.weight_decay > 0


def test_fit_rejects_single_class_and_empty(demo_xy):
    X, y = demo_xy
    with pytest.raises(SchemaError, match="single class"):
        GenreClassifier(n_estimators=5).fit(X.head(30), ["pop"] * 30)
    with pytest.raises(InputError, match="empty"):
        GenreClassifier().fit(X.iloc[:0], [])
    with pytest.raises(SchemaError, match="no genre label"):
        GenreClassifier(n_estimators=5).fit(X.head(3), ["pop", None, "rock"])
    with pytest.raises(InputError, match="unknown model"):
        GenreClassifier(model="xgboost").fit(X.head(10), y[:10])


# -- persistence ------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["lgb_model", "dnn_model"])
def test_save_load_roundtrip(which, request, demo_xy, tmp_path):
    model = request.getfixturevalue(which)
    X, _ = demo_xy
    model.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert ("model.lgb.txt" in files) == (model.model == "lightgbm")
    assert ("model.pt" in files) == (model.model == "dnn")
    assert not any(f.endswith((".pkl", ".pickle", ".joblib")) for f in files)
    loaded = GenreClassifier.load(tmp_path / "m")
    assert list(loaded.classes_) == list(model.classes_)
    np.testing.assert_allclose(loaded.predict_proba(X.head(100)), model.predict_proba(X.head(100)), atol=1e-6)
    meta = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert meta["model"] == model.model and meta["classes"] == list(model.classes_)


def test_lightgbm_saved_as_text(lgb_model, tmp_path):
    lgb_model.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.lgb.txt").read_text().startswith("tree")


@pytest.mark.parametrize("which,name", [("lgb_model", "model.lgb.txt"), ("dnn_model", "model.pt"),
                                        ("lgb_model", "preprocess.json")])
def test_load_rejects_truncated_file(which, name, request, tmp_path):
    request.getfixturevalue(which).save(tmp_path / "m")
    path = tmp_path / "m" / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelError, match=str(path)):
        GenreClassifier.load(tmp_path / "m")


@pytest.mark.parametrize("which,name", [("lgb_model", "model.lgb.txt"), ("dnn_model", "model.pt")])
def test_load_rejects_corrupted_file(which, name, request, tmp_path):
    request.getfixturevalue(which).save(tmp_path / "m")
    path = tmp_path / "m" / name
    data = bytearray(path.read_bytes())
    for i in range(100, len(data), 97):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="corrupted"):
        GenreClassifier.load(tmp_path / "m")


def test_load_rejects_damaged_weights_even_with_matching_metadata(dnn_model, tmp_path):
    """Without the checksum, a garbage .pt must still fail through torch.load(weights_only=True)."""
    dnn_model.save(tmp_path / "m")
    meta_path = tmp_path / "m" / "manifest.json"
    meta = json.loads(meta_path.read_text())
    (tmp_path / "m" / "model.pt").write_bytes(b"not a torch file")
    from recsys.io import sha256_file

    meta["files"]["model.pt"] = sha256_file(tmp_path / "m" / "model.pt")
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="cannot load torch state_dict"):
        GenreClassifier.load(tmp_path / "m")


def test_load_missing_dir_and_files(lgb_model, tmp_path):
    with pytest.raises(ModelError, match="not found"):
        GenreClassifier.load(tmp_path / "nope")
    lgb_model.save(tmp_path / "m")
    (tmp_path / "m" / "model.lgb.txt").unlink()
    with pytest.raises(ModelError, match="missing"):
        GenreClassifier.load(tmp_path / "m")
    (tmp_path / "m" / "manifest.json").write_text('{"format_version": ')
    with pytest.raises(ModelError, match="corrupted"):
        GenreClassifier.load(tmp_path / "m")


def test_save_is_atomic_keeps_previous_model(lgb_model, tmp_path, monkeypatch):
    lgb_model.save(tmp_path / "m")
    before = (tmp_path / "m" / "model.lgb.txt").read_bytes()

    def boom(self, directory):
        raise RuntimeError("disk full")

    monkeypatch.setattr(GenreClassifier, "write_files", boom)
    with pytest.raises(RuntimeError):
        lgb_model.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.lgb.txt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_predict_table_one_row_per_input_row(lgb_model, demo_csv):
    from recsys.catalog import read_rows

    preds = predict_table(lgb_model, read_rows(demo_csv))
    raw = pd.read_csv(demo_csv)
    assert len(preds) == len(raw)
    assert preds["track_id"].tolist() == raw["track_id"].astype(str).tolist()
    assert list(preds.columns[:3]) == ["track_id", "predicted_genre", "true_genre"]
    assert [c for c in preds.columns if c.startswith("p_")] == [f"p_{g}" for g in lgb_model.classes_]


def test_pool_by_group_mixes_each_row_with_its_artists_mean():
    p = np.array([[0.6, 0.4], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    out = pool_by_group(p, ["a", "a", "a", "b"], weight=0.8)
    mean_a = p[:3].mean(axis=0)
    np.testing.assert_allclose(out[:3], 0.2 * p[:3] + 0.8 * mean_a)
    np.testing.assert_allclose(out[3], p[3])  # an artist with one track is unchanged
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert out[0].argmax() == 1  # outvoted by its artist's other two tracks
    np.testing.assert_allclose(pool_by_group(p, ["a", "a", "a", "b"], weight=0.0), p)
    with pytest.raises(ValueError, match="artist_pooling"):
        pool_by_group(p, ["a"] * 4, weight=1.5)
    with pytest.raises(ValueError, match="3 entries for 4 rows"):
        pool_by_group(p, ["a"] * 3, weight=0.5)


def test_predict_table_pools_an_artists_rows(lgb_model, demo_csv):
    """With pooling an artist's rows agree more often, and the CLI's switch turns it off."""
    from recsys.catalog import read_rows

    rows = read_rows(demo_csv)
    pooled = predict_table(lgb_model, rows)
    alone = predict_table(lgb_model, rows, pool_artists=False)
    np.testing.assert_allclose(alone.filter(like="p_").to_numpy(),
                               lgb_model.predict_proba(tabular_features(rows)))
    groups = artist_groups(rows)
    multi = pd.Series(groups).map(pd.Series(groups).value_counts()) > 1

    def agreeing(preds):  # share of multi-track artists whose rows all get one genre
        per = preds["predicted_genre"][multi.to_numpy()].groupby(groups[multi.to_numpy()]).nunique()
        return float((per == 1).mean())

    assert agreeing(pooled) > agreeing(alone)
    single = ~multi.to_numpy()
    assert (pooled["predicted_genre"][single] == alone["predicted_genre"][single]).all()


# -- evaluation -------------------------------------------------------------------------------
def test_grouped_folds_keep_artists_apart(demo):
    y = demo["parent_genre"].astype(str).to_numpy()
    groups = artist_groups(demo)
    folds = grouped_folds(y, groups, n_splits=3, seed=1)
    assert len(folds) == 3
    seen = np.concatenate([te for _, te in folds])
    assert sorted(seen.tolist()) == list(range(len(y)))
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
        assert set(y[te]) == set(y)
    with pytest.raises(SchemaError, match="distinct artist"):
        grouped_folds(y[:4], ["a", "a", "b", "b"], n_splits=3)


def test_artist_groups_missing_artist_is_own_group():
    df = pd.DataFrame({"track_id": ["t1", "t2", "t3"], "track_artist": ["A", None, "a "]})
    g = artist_groups(df)
    assert g[0] == g[2] and g[1] == "track:t2"


def test_genre_metrics_and_confusion(tmp_path):
    m = genre_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    assert m["accuracy"] == 0.75
    assert m["per_genre_f1"]["a"] == pytest.approx(2 / 3)
    assert m["per_genre_f1"]["b"] == pytest.approx(0.8)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert m["confusion"] == [[1, 1], [0, 2]]
    text = confusion_text(m["confusion"], ["a", "b"])
    assert "0.500" in text and "1.000" in text
    save_confusion_png(m["confusion"], ["a", "b"], tmp_path / "c.png", title="t")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_rejects_truncated_lightgbm_even_with_matching_checksum(lgb_model, tmp_path):
    """LightGBM's own parser can crash on a cut-off file: the end marker check must catch it first."""
    from recsys.io import sha256_file

    lgb_model.save(tmp_path / "m")
    model = tmp_path / "m" / "model.lgb.txt"
    model.write_text(model.read_text()[:5000])
    meta_path = tmp_path / "m" / "manifest.json"
    meta = json.loads(meta_path.read_text())
    meta["files"]["model.lgb.txt"] = sha256_file(model)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="truncated or corrupted"):
        GenreClassifier.load(tmp_path / "m")


def test_clean_title_drops_featured_artists():
    assert clean_title("Taki Taki (feat. Selena Gomez, Ozuna & Cardi B)") == "taki taki"
    assert (clean_title("I Don't Care (with Justin Bieber) - Loud Luxury Remix")
            == "i don't care - loud luxury remix")
    assert clean_title(None) == "" and clean_title(float("nan")) == ""


def test_title_text_model_learns_language_and_roundtrips():
    texts = [f"{w} {v} | {w}" for w in ("amor", "corazón", "noche", "baila", "vida") for v in range(12)]
    texts += [f"{w} {v} | {w}" for w in ("night", "heart", "love", "dance", "life") for v in range(12)]
    codes = np.array([0] * 60 + [1] * 60)
    tm = TitleTextModel(random_state=0).fit(texts, codes, 2)
    assert tm.oof_.shape == (120, 2)
    assert (tm.oof_.argmax(1) == codes).mean() > 0.6  # out-of-fold, grouped by album name
    p = tm.predict_proba(["mi amor | corazón de noche", "love tonight | heart"])
    assert p[0, 0] > 0.5 and p[1, 1] > 0.5
    again = TitleTextModel.from_dict(json.loads(json.dumps(tm.to_dict())))
    np.testing.assert_array_equal(again.predict_proba(texts), tm.predict_proba(texts))


def test_text_model_optional(demo_xy, tmp_path):
    X, y = demo_xy
    off = GenreClassifier(n_estimators=10, text=False).fit(X, y)
    assert off.text_model_ is None and off.feature_names_ == list(FEATURES)
    off.save(tmp_path / "off")
    assert not (tmp_path / "off" / "text_model.json").exists()
    # a model trained with titles still predicts for a table without names (empty titles)
    on = GenreClassifier(n_estimators=10).fit(X, y)
    p = on.predict_proba(tabular_features(X[list(STATS)].head(5)))
    assert p.shape == (5, len(on.classes_))


def test_load_rejects_damaged_text_model(lgb_model, tmp_path):
    lgb_model.save(tmp_path / "m")
    path = tmp_path / "m" / "text_model.json"
    path.write_text(path.read_text()[:1000])
    with pytest.raises(ModelError, match="text_model.json"):
        GenreClassifier.load(tmp_path / "m")


def test_text_model_skipped_when_titles_are_too_few_or_useless(demo_xy):
    X, y = demo_xy
    few = X.head(40).copy()
    few[TEXT_COLUMN] = ""
    few.iloc[:5, few.columns.get_loc(TEXT_COLUMN)] = "a | b"
    assert GenreClassifier(n_estimators=5).fit(few, y[:40]).text_model_ is None
    same = X.head(60).copy()
    same[TEXT_COLUMN] = "x"  # one-character titles: no 2-gram, empty vocabulary
    clf = GenreClassifier(n_estimators=5).fit(same, y[:60])
    assert clf.predict_proba(same).shape == (60, len(clf.classes_))
