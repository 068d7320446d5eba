"""Per-track PNG report: statistics and genres always; spectrogram, chroma, CNN and stems with audio."""
from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

sf = pytest.importorskip("soundfile")

from recsys.cli import main
from recsys.engine import Engine
from recsys.report import audio_file_map, genre_probabilities, track_report
from recsys.testing.audio import synth_song
from recsys.testing.engine import fast_config, make_catalog


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    cat = make_catalog(80)
    out = root / "index"
    eng = Engine.build(cat, simulate_users=20, out=out, config=fast_config(), seed=0)
    audio = root / "audio"
    audio.mkdir()
    sf.write(audio / "t0003.wav", synth_song("thump", seconds=6.0, seed=3), 22050)
    return {"root": root, "eng": eng, "index": out, "audio": audio}


def test_report_without_audio(setup):
    png = track_report(setup["eng"], "t0001")
    w, h = png_size(png)
    assert w > 800 and h > 600


def test_audio_panels_make_the_report_taller(setup):
    eng = setup["eng"]
    plain = png_size(track_report(eng, "t0003"))[1]
    with_audio = png_size(track_report(eng, "t0003", audio_file=setup["audio"] / "t0003.wav"))[1]
    assert with_audio > plain + 400  # spectrogram, chroma and accompaniment rows


def test_genre_probabilities_follow_the_model(setup):
    eng = setup["eng"]
    p = genre_probabilities(eng, 0)
    assert p is not None and set(p) == set(map(str, eng.genre_model.classes_))
    assert abs(sum(p.values()) - 1) < 1e-3


def test_unknown_track_is_an_input_error(setup):
    from recsys.errors import InputError

    with pytest.raises(InputError, match="unknown track"):
        track_report(setup["eng"], "nope")


def test_audio_file_map_by_stem_and_features_table(setup, tmp_path):
    m = audio_file_map(setup["eng"].tracks.ids, audio_dir=setup["audio"])
    assert m == {"t0003": setup["audio"] / "t0003.wav"}
    feats = tmp_path / "features"
    feats.mkdir()
    table = pd.DataFrame({"file": ["t0003.wav"], "track_id": ["t0007"], "ok": [True]})
    table.to_parquet(feats / "spectral.parquet")
    m = audio_file_map(["t0003", "t0007"], features=feats, audio_dir=setup["audio"])
    assert m["t0007"] == setup["audio"] / "t0003.wav"
    assert audio_file_map(["t0003"], audio_dir=None) == {}


def test_stems_panel_plots_the_accompaniment_block(setup, tmp_path):
    from matplotlib.figure import Figure

    from recsys.report import _stems_panel

    feats = tmp_path / "features"
    feats.mkdir()
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"file": [f"f{i}.wav" for i in range(6)],
                          "track_id": [f"t{i:04d}" for i in range(6)],
                          "ok": True, "reason": ""})
    for j in range(5):
        table[f"stems__feat{j}"] = rng.normal(size=6)
    table.to_parquet(feats / "stems.parquet")
    ax = Figure().add_subplot()
    _stems_panel(ax, feats, "t0002")
    assert len(ax.patches) == 5  # one bar per accompaniment feature
    ax = Figure().add_subplot()
    _stems_panel(ax, feats, "t0099")  # no row for this track: a note, no bars
    assert len(ax.patches) == 0 and ax.texts


def test_cnn_chunk_probabilities_over_time(setup, tmp_path):
    """A tiny chunk CNN trained here: the report gets one more row (probabilities per chunk)."""
    from pipelines import train_cnn
    from recsys.audio import cnn
    from recsys.testing.audio import write_labelled_set

    labels = write_labelled_set(tmp_path / "songs", per_genre=3, seconds=3.0, seed=2)
    cfg = cnn.CNNConfig(chunk_seconds=1.0, train_hop_seconds=None, n_mels=32, channels=(4, 8), epochs=2,
                        batch_size=8, patience=2, excerpt_seconds=None, folds=1)
    train_cnn.run(tmp_path / "songs", tmp_path / "model", labels=labels, config=cfg, cross_validation=False,
                  progress=False)
    eng, wav = setup["eng"], setup["audio"] / "t0003.wav"
    without = png_size(track_report(eng, "t0003", audio_file=wav))[1]
    with_cnn = png_size(track_report(eng, "t0003", audio_file=wav, cnn_model=tmp_path / "model"))[1]
    assert with_cnn > without + 150


def test_cli_report(setup, tmp_path):
    out = tmp_path / "r.png"
    res = CliRunner().invoke(main, ["report", "t0003", "--index", str(setup["index"]), "--out", str(out),
                                    "--audio-dir", str(setup["audio"])])
    assert res.exit_code == 0, res.output
    assert "with audio" in res.output and png_size(out.read_bytes())[1] > 1000
    res = CliRunner().invoke(main, ["report", "nope", "--index", str(setup["index"]), "--out", str(out)])
    assert res.exit_code == 2 and "error: unknown track id" in res.output and "Traceback" not in res.output
    missing = str(tmp_path / "missing")
    res = CliRunner().invoke(main, ["report", "t0001", "--index", missing, "--out", str(out)])
    assert res.exit_code == 2 and "error:" in res.output
