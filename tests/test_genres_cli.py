"""`recsys genres train` / `predict` end to end on the bundled demo table, and every bad input."""
from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.schema import STATS
from recsys.cli import main


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def _assert_user_error(result, *needles: str) -> None:
    """Non-zero exit, exactly one line starting with ``error:``, no traceback."""
    assert result.exit_code != 0, result.output
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    for n in needles:
        assert n in errors[0], errors[0]


@pytest.fixture(scope="module")
def demo_rows(demo_csv) -> pd.DataFrame:
    return pd.read_csv(demo_csv)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, demo_csv):
    out = tmp_path_factory.mktemp("genres") / "model"
    result = _run("genres", "train", "--catalog", str(demo_csv), "--out", str(out), "--folds", "2",
                  "--n-estimators", "40", "--seed", "1")
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_prints_grouped_cv_beside_baselines(trained):
    out, output = trained
    assert "artist-grouped 2-fold CV" in output
    assert "fold 1/2" in output and "fold 2/2" in output
    for name in ("lightgbm", "majority", "logreg-12-stats"):
        assert name in output
    report = json.loads((out / "report.json").read_text())
    res = report["cv"]["results"]
    assert set(res) == {"lightgbm", "lightgbm-per-track", "majority", "logreg-12-stats"}
    assert set(res["lightgbm"]["per_genre_f1"]) == set(report["class_counts"])
    # on unseen artists the model must beat both baselines computed on the same folds
    assert (res["lightgbm"]["accuracy_mean"] > res["logreg-12-stats"]["accuracy_mean"]
            > res["majority"]["accuracy_mean"])
    assert res["lightgbm"]["macro_f1_mean"] > res["majority"]["macro_f1_mean"]
    for name in ("confusion.txt", "confusion.png", "model.lgb.txt", "manifest.json", "preprocess.json"):
        assert (out / name).stat().st_size > 0
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert "true \\ predicted" in (out / "confusion.txt").read_text()


def test_predict_one_row_per_input_row(trained, demo_csv, demo_rows, tmp_path):
    out, _ = trained
    preds_path = tmp_path / "preds.csv"
    result = _run("genres", "predict", "--model", str(out), "--catalog", str(demo_csv),
                  "--out", str(preds_path))
    assert result.exit_code == 0, result.output
    preds = pd.read_csv(preds_path)
    assert len(preds) == len(demo_rows)
    classes = json.loads((out / "manifest.json").read_text())["classes"]
    assert list(preds.columns) == ["track_id", "predicted_genre", "true_genre", *[f"p_{g}" for g in classes]]
    assert preds["track_id"].tolist() == demo_rows["track_id"].tolist()
    assert set(preds["predicted_genre"]) <= set(classes)
    assert (preds[[f"p_{g}" for g in classes]].sum(axis=1) - 1).abs().max() < 1e-6


def test_predict_without_labels_has_no_true_genre(trained, demo_rows, tmp_path):
    out, _ = trained
    src = tmp_path / "stats.csv"
    demo_rows[["track_id", *STATS]].head(20).to_csv(src, index=False)
    result = _run("genres", "predict", "--model", str(out), "--catalog", str(src),
                  "--out", str(tmp_path / "p.csv"))
    assert result.exit_code == 0, result.output
    preds = pd.read_csv(tmp_path / "p.csv")
    assert len(preds) == 20 and "true_genre" not in preds.columns


@pytest.mark.slow
def test_train_dnn_no_smote(demo_csv, tmp_path):
    out = tmp_path / "dnn"
    result = _run("genres", "train", "--catalog", str(demo_csv), "--out", str(out), "--model", "dnn",
                  "--folds", "2", "--epochs", "4", "--no-smote")
    assert result.exit_code == 0, result.output
    assert (out / "model.pt").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "dnn" and report["smote"] is False


# -- bad input ----------------------------------------------------------------------------------
def test_train_missing_file(tmp_path):
    _assert_user_error(_run("genres", "train", "--catalog", str(tmp_path / "nope.csv"),
                            "--out", str(tmp_path / "m")), "nope.csv", "not found")
    assert not (tmp_path / "m").exists()


def test_train_empty_table(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_text("")
    _assert_user_error(_run("genres", "train", "--catalog", str(p), "--out", str(tmp_path / "m")), "empty")
    p.write_text("track_id," + ",".join(STATS) + ",playlist_genre\n")
    _assert_user_error(_run("genres", "train", "--catalog", str(p), "--out", str(tmp_path / "m")), "empty")


def test_train_wrong_column_types(demo_rows, tmp_path):
    df = demo_rows.head(60).copy()
    df["energy"] = df["energy"].astype(object)
    df.loc[df.index[7], "energy"] = "very loud"
    p = tmp_path / "bad.csv"
    df.to_csv(p, index=False)
    _assert_user_error(_run("genres", "train", "--catalog", str(p), "--out", str(tmp_path / "m")),
                       "energy", "numeric", "row 8")


def test_train_all_nan_column(demo_rows, tmp_path):
    df = demo_rows.head(60).copy()
    df["tempo"] = float("nan")
    p = tmp_path / "nan.csv"
    df.to_csv(p, index=False)
    _assert_user_error(_run("genres", "train", "--catalog", str(p), "--out", str(tmp_path / "m")), "tempo")


def test_train_single_class(demo_rows, tmp_path):
    df = demo_rows[demo_rows["playlist_genre"] == "rock"].head(80)
    p = tmp_path / "rock.csv"
    df.to_csv(p, index=False)
    _assert_user_error(_run("genres", "train", "--catalog", str(p), "--out", str(tmp_path / "m"),
                            "--folds", "2"), "single class")


def test_train_without_labels(demo_rows, tmp_path):
    p = tmp_path / "nolabels.csv"
    demo_rows[["track_id", *STATS]].head(30).to_csv(p, index=False)
    _assert_user_error(_run("genres", "train", "--catalog", str(p), "--out", str(tmp_path / "m")),
                       "no genre labels")


def test_train_too_few_artists_for_folds(demo_rows, tmp_path):
    df = demo_rows[demo_rows["track_artist"].isin(demo_rows["track_artist"].unique()[:3])]
    p = tmp_path / "few.csv"
    df.to_csv(p, index=False)
    _assert_user_error(_run("genres", "train", "--catalog", str(p), "--out", str(tmp_path / "m"),
                            "--folds", "5"), "artist")


def test_predict_model_dir_missing(demo_csv, tmp_path):
    _assert_user_error(_run("genres", "predict", "--model", str(tmp_path / "nomodel"),
                            "--catalog", str(demo_csv), "--out", str(tmp_path / "p.csv")),
                       "nomodel", "not found")
    assert not (tmp_path / "p.csv").exists()


def _copy_model(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_predict_truncated_model_file(trained, demo_csv, tmp_path):
    model = _copy_model(trained[0], tmp_path / "m")
    f = model / "model.lgb.txt"
    f.write_bytes(f.read_bytes()[:1000])
    _assert_user_error(_run("genres", "predict", "--model", str(model), "--catalog", str(demo_csv),
                            "--out", str(tmp_path / "p.csv")), "model.lgb.txt", "truncated or modified")


def test_predict_corrupted_model_file(trained, demo_csv, tmp_path):
    model = _copy_model(trained[0], tmp_path / "m")
    f = model / "model.lgb.txt"
    f.write_text(f.read_text().replace("num_leaves", "num_leafs", 1))
    _assert_user_error(_run("genres", "predict", "--model", str(model), "--catalog", str(demo_csv),
                            "--out", str(tmp_path / "p.csv")), "model.lgb.txt")


def test_predict_corrupted_metadata(trained, demo_csv, tmp_path):
    model = _copy_model(trained[0], tmp_path / "m")
    (model / "manifest.json").write_bytes(b"\x00\x01garbage")
    _assert_user_error(_run("genres", "predict", "--model", str(model), "--catalog", str(demo_csv),
                            "--out", str(tmp_path / "p.csv")), "manifest.json")


def test_predict_missing_catalog_and_gz_garbage(trained, tmp_path):
    _assert_user_error(_run("genres", "predict", "--model", str(trained[0]),
                            "--catalog", str(tmp_path / "x.csv"), "--out", str(tmp_path / "p.csv")), "x.csv")
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(gzip.compress(b"")[:10])
    _assert_user_error(_run("genres", "predict", "--model", str(trained[0]), "--catalog", str(bad),
                            "--out", str(tmp_path / "p.csv")), "bad.csv.gz")


def test_failed_train_keeps_previous_model(trained, demo_rows, tmp_path):
    model = _copy_model(trained[0], tmp_path / "m")
    before = (model / "model.lgb.txt").read_bytes()
    p = tmp_path / "rock.csv"
    demo_rows[demo_rows["playlist_genre"] == "rock"].head(50).to_csv(p, index=False)
    _assert_user_error(_run("genres", "train", "--catalog", str(p), "--out", str(model)), "single class")
    assert (model / "model.lgb.txt").read_bytes() == before
