"""Chunk CNN: learns synthetic genres on held-out songs, song-grouped folds, save/load, block, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.testing.audio import GENRES, SR, synth_song, write_labelled_set
from pipelines import train_cnn
from recsys.audio import cnn
from recsys.errors import InputError, ModelError, SchemaError
from recsys.blocks import SkipFile, get_extractor

#: tiny and quick: 1-s chunks, 32 mel bands, two conv layers
TINY = dict(chunk_seconds=1.0, train_hop_seconds=None, n_mels=32, channels=(8, 16), epochs=20, batch_size=8,
            patience=5, excerpt_seconds=None, backbone="scratch")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cnn")
    labels = write_labelled_set(root / "audio", per_genre=6, seconds=5.0, seed=1)
    cfg = cnn.CNNConfig(folds=3, **TINY)
    report = train_cnn.run(root / "audio", root / "model", labels=labels, config=cfg, progress=False)
    return root, report


def test_cnn_learns_held_out_songs_well_above_chance(trained):
    _, report = trained
    cv = report["cv"]
    assert (cv["n_splits"] == 3 and cv["n_songs"] == 18
            and cv["majority_song_accuracy"] == pytest.approx(1 / 3))
    assert cv["cnn"]["song_vote"]["accuracy"] >= 0.8
    assert cv["cnn"]["chunk"]["accuracy"] >= 0.7
    # the baseline ran on the same folds and is reported beside it
    assert cv["baseline_logreg_mfcc_chroma"]["song_mean"]["n"] == cv["cnn"]["song_vote"]["n"] == 18
    assert sum(f["test_songs"] for f in cv["folds"]) == 18


def test_folds_never_put_a_test_song_in_training(monkeypatch):
    seen = []
    real_fit = cnn.fit_cnn

    def spy(X, y, n_classes, config, **kw):
        seen.append(X)
        return real_fit(X, y, n_classes, cnn.CNNConfig(**{**TINY, "epochs": 1}), **kw)

    monkeypatch.setattr(cnn, "fit_cnn", spy)
    rng = np.random.default_rng(0)
    # every song has a unique constant value, so chunks identify their song
    mels = [np.full((3, 8, 10), float(i), np.float32) + rng.normal(0, 1e-3, (3, 8, 10)).astype(np.float32)
            for i in range(12)]
    bases = [m.reshape(3, -1)[:, :4] for m in mels]
    labels = np.repeat([0, 1, 2], 4)
    cnn.cross_validate(mels, bases, labels, 3, cnn.CNNConfig(folds=4, **{**TINY, "epochs": 1}),
                       progress=False)
    assert len(seen) == 4
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=4, shuffle=True, random_state=0).split(np.arange(12), labels)
    for X, (_, test) in zip(seen, folds):
        train_songs = set(np.round(X.mean(axis=(1, 2))).astype(int))
        assert train_songs and not train_songs & set(test)  # no chunk of a test song was trained on


def test_model_dir_roundtrip_and_vote(trained):
    root, report = trained
    meta = json.loads((root / "model" / "manifest.json").read_text())
    assert meta["classes"] == sorted(GENRES) and meta["frontend"]["chunk_seconds"] == 1.0
    assert meta["kind"] == cnn.KIND and set(meta["files"]) == {"model.pt", "metrics.json"}
    m = cnn.CNNModel.load(root / "model")
    probs = m.chunk_probs(synth_song("tick", seconds=4.0, seed=999), SR)
    assert probs.shape == (4, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    mean, vote = cnn.song_vote(probs)
    assert m.classes[vote] == "tick"
    # vote is the mode of chunk argmaxes, ties broken by the mean probability
    p = np.array([[0.9, 0.1, 0.0], [0.4, 0.6, 0.0], [0.45, 0.55, 0.0]])
    assert cnn.song_vote(p)[1] == 1
    assert cnn.song_vote(np.array([[0.9, 0.1], [0.4, 0.6]]))[1] == 0


def test_cnn_block_columns_and_short_or_silent_input(trained):
    root, _ = trained
    block = get_extractor("cnn", model=str(root / "model"))
    out = block.extract(synth_song("drone", seconds=3.0, seed=5), SR, path=Path("d.wav"))
    assert set(out) == {f"cnn__p_{g}" for g in GENRES} | {"cnn__vote", "cnn__n_chunks"}
    assert out["cnn__vote"] == "drone" and out["cnn__n_chunks"] == 3
    assert "model_sha256" in block.settings()
    with pytest.raises(SkipFile, match="shorter than one 1-s chunk"):
        block.extract(synth_song("drone", seconds=0.5, seed=5), SR, path=Path("short.wav"))
    with pytest.raises(SkipFile, match="silent"):
        block.extract(np.zeros(3 * SR, np.float32), SR, path=Path("silence.wav"))
    with pytest.raises(InputError, match="cnn.model"):
        get_extractor("cnn")


def test_damaged_model_is_a_model_error(trained, tmp_path):
    root, _ = trained
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(root / "model", bad)
    (bad / "model.pt").write_bytes((root / "model" / "model.pt").read_bytes()[:100])
    with pytest.raises(ModelError, match="checksum"):
        cnn.CNNModel.load(bad)
    from recsys.io import sha256_file

    man = json.loads((bad / "manifest.json").read_text())  # a damaged file the manifest agrees with
    man["files"]["model.pt"] = sha256_file(bad / "model.pt")
    (bad / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ModelError, match="cannot load CNN weights"):
        cnn.CNNModel.load(bad)
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="corrupted"):
        cnn.CNNModel.load(bad)
    with pytest.raises(ModelError, match="not found"):
        cnn.CNNModel.load(tmp_path / "nope")


def test_labels_input_errors(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "labels.csv").write_text("file,genre\na.wav,pop\nmissing.wav,rock\n")
    with pytest.raises(InputError, match="not found"):
        cnn.labelled_files(tmp_path, tmp_path / "labels.csv")
    (tmp_path / "labels.csv").write_text("path,label\na.wav,pop\n")
    with pytest.raises(SchemaError, match="file,genre"):
        cnn.labelled_files(tmp_path, tmp_path / "labels.csv")


def test_cli_train_predict_from_genre_folders(tmp_path):
    from recsys.cli import main

    audio = write_labelled_set(tmp_path / "audio", per_genre=3, seconds=3.0, seed=2, layout="folders")
    (audio / "thump" / "broken.wav").write_bytes(b"not audio at all")
    (audio / "tick" / "phone.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A " + b"\x00" * 64)
    runner = CliRunner()
    res = runner.invoke(main, ["cnn", "train", "--audio-dir", str(audio), "--out", str(tmp_path / "m"),
                               "--folds", "0", "--chunk-seconds", "1", "--excerpt-seconds", "0",
                               "--epochs", "3", "--n-mels", "32", "--cache", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert "skipped thump/broken.wav" in res.output and "skipped tick/phone.m4a" in res.output
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 9  # decoded songs cached (not the broken one)
    res = runner.invoke(main, ["cnn", "predict", "--model", str(tmp_path / "m"), "--audio-dir", str(audio),
                               "--out", str(tmp_path / "preds.csv")])
    assert res.exit_code == 0, res.output
    preds = pd.read_csv(tmp_path / "preds.csv")
    assert list(preds.columns) == ["file", "predicted_genre"] + [f"p_{g}" for g in sorted(GENRES)]
    assert len(preds) == 11 and "failed thump/broken.wav" in res.output
    ok = preds.dropna()
    assert len(ok) == 9 and set(ok["predicted_genre"]) <= set(GENRES)
    res = runner.invoke(main, ["cnn", "predict", "--model", str(tmp_path / "nope"), "--audio-dir", str(audio),
                               "--out", str(tmp_path / "p2.csv")])
    assert res.exit_code == 2 and "error:" in res.output


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("musicnn") is None,
                    reason="musicnn weights not installed")
def test_musicnn_backbone_head_learns_held_out_songs_and_roundtrips(tmp_path):
    """The default backbone: frozen tagger features + logistic regression, song-grouped CV, MFCC baseline
    in the same report; the saved head reloads (weights_only) and predicts the same."""
    assert cnn.CNNConfig().backbone == "musicnn"
    labels = write_labelled_set(tmp_path / "audio", per_genre=5, seconds=6.0, seed=3)
    cfg = cnn.CNNConfig(folds=3, chunk_seconds=3.0, train_hop_seconds=1.5, excerpt_seconds=None)
    report = train_cnn.run(tmp_path / "audio", tmp_path / "model", labels=labels, config=cfg, progress=False)
    cv = report["cv"]
    assert cv["model"].startswith("musicnn head") and cv["n_songs"] == 15
    assert cv["cnn"]["song_mean"]["accuracy"] >= 0.8  # chance 1/3
    assert cv["baseline_logreg_mfcc_chroma"]["song_mean"]["n"] == 15
    m = cnn.CNNModel.load(tmp_path / "model")
    assert m.architecture["backbone"] == "musicnn"
    y = synth_song(GENRES[0], seconds=6.0, seed=99)
    probs = m.chunk_probs(y, SR)
    assert probs.shape == (2, len(GENRES)) and np.allclose(probs.sum(1), 1, atol=1e-5)
