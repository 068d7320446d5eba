"""Batch extraction: bad inputs get defined outcomes, cache reuse, mapping, parallel, kill -9 resume."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from recsys.testing.audio import SR, click_track, synth_song, write_labelled_set
from pipelines.extract_features import ExtractConfig, parse_sets, run
from recsys.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "audio"
HAVE_FFMPEG = shutil.which("ffmpeg") is not None


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from pipelines import train_cnn
    from recsys.audio import cnn

    root = tmp_path_factory.mktemp("pipe_model")
    labels = write_labelled_set(root / "audio", per_genre=2, seconds=2.0, seed=4)
    cfg = cnn.CNNConfig(chunk_seconds=1.0, train_hop_seconds=None, n_mels=32, channels=(4, 8), epochs=1,
                        excerpt_seconds=None)
    train_cnn.run(root / "audio", root / "model", labels=labels, config=cfg, cross_validation=False,
                  progress=False)
    return root / "model"


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad_audio")
    song = synth_song("thump", seconds=4.0, seed=7)
    (d / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(300))
    (d / "empty.wav").write_bytes(b"")
    sf.write(d / "tiny.wav", song[: int(0.1 * SR)], SR)
    sf.write(d / "short.wav", song[: int(0.6 * SR)], SR)
    sf.write(d / "silence.wav", np.zeros(3 * SR, np.float32), SR)
    for sub in ("PCM_U8", "PCM_24", "FLOAT"):
        sf.write(d / f"depth_{sub.lower()}.wav", song, SR, subtype=sub)
    sf.write(d / "six_channels.wav", np.stack([song] * 6, axis=1), SR)
    sf.write(d / "rate_8000.flac", click_track(120, seconds=4.0, sr=8000), 8000)
    sf.write(d / "rate_96000.wav", click_track(120, seconds=4.0, sr=96000), 96000)
    (d / "nonmusic").mkdir()
    for name in ("198-209-0000.ogg", "glacier-bay-humpback.ogg",
                 "456440__inspectorj__bird-whistling-robin-single-13.ogg"):
        shutil.copy(DATA / name, d / "nonmusic" / name)
    (d / "song.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A " + b"\x00" * 64)
    (d / "notes.txt").write_text("not audio, ignored")
    return d


def _by_file(table: pd.DataFrame) -> dict[str, pd.Series]:
    return {row.file: row for row in table.itertuples()}


def test_bad_inputs_get_defined_outcomes_and_never_stop_the_batch(bad_dir, model_dir, tmp_path):
    out = tmp_path / "feat"
    mapping = tmp_path / "map.csv"
    mapping.write_text("file,track_id\nnonmusic/198-209-0000.ogg,T-speech\n")
    cfg = ExtractConfig(blocks=("spectral", "audiostats", "cnn"),
                        options=parse_sets([f"cnn.model={model_dir}"]))
    summary = run(bad_dir, out, cfg, mapping=mapping, progress=False)
    sp, st, cn = (pd.read_parquet(out / f"{b}.parquet") for b in ("spectral", "audiostats", "cnn"))
    assert len(sp) == len(st) == len(cn) == 15  # every audio file has a row; notes.txt is not audio
    assert list(sp.columns[:4]) == ["file", "track_id", "ok", "reason"]
    s, a, c = _by_file(sp), _by_file(st), _by_file(cn)
    for f in ("corrupt.wav", "empty.wav"):
        assert not s[f].ok and not a[f].ok and not c[f].ok
    assert "cannot decode" in s["corrupt.wav"].reason and "empty" in s["empty.wav"].reason
    assert not s["tiny.wav"].ok and "too short" in s["tiny.wav"].reason
    assert s["short.wav"].ok and a["short.wav"].ok and not c["short.wav"].ok
    assert "shorter than one 1-s chunk" in c["short.wav"].reason
    assert s["silence.wav"].ok and s["silence.wav"].spectral__silent == 1.0
    assert (not a["silence.wav"].ok and "silent" in a["silence.wav"].reason
            and "silent" in c["silence.wav"].reason)
    good = ["depth_pcm_u8.wav", "depth_pcm_24.wav", "depth_float.wav", "six_channels.wav", "rate_8000.flac",
            "rate_96000.wav", "nonmusic/198-209-0000.ogg", "nonmusic/glacier-bay-humpback.ogg",
            "nonmusic/456440__inspectorj__bird-whistling-robin-single-13.ogg"]
    for f in good:
        assert s[f].ok and a[f].ok and c[f].ok, (f, s[f].reason, a[f].reason, c[f].reason)
    # bit depth and channel count do not change the features: same song, same level
    levels = [s[f].spectral__rms_db for f in good[:4]]
    assert np.ptp(levels) < 0.3
    assert abs(a["rate_8000.flac"].tempo - 120) < 3 and abs(a["rate_96000.wav"].tempo - 120) < 3
    assert s["nonmusic/198-209-0000.ogg"].track_id == "T-speech" and s["short.wav"].track_id == "short"
    if not HAVE_FFMPEG:
        assert not s["song.m4a"].ok and "ffmpeg" in s["song.m4a"].reason
    failures = pd.read_csv(out / "failures.csv")
    assert set(failures.columns) == {"file", "block", "kind", "reason"}
    assert len(failures) == (~sp.ok).sum() + (~st.ok).sum() + (~cn.ok).sum()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["blocks"]["cnn"]["rows"] == 15 and "cnn__vote" in manifest["blocks"]["cnn"]["columns"]
    assert any("ffmpeg" in line or "cannot decode" in line for line in summary.lines())

    # rerun: everything comes from the cache except machine-dependent failures (missing ffmpeg)
    again = run(bad_dir, out, cfg, mapping=mapping, progress=False)
    assert again.computed == (0 if HAVE_FFMPEG else 3)
    assert again.cached == 15 * 3 - again.computed
    pd.testing.assert_frame_equal(pd.read_parquet(out / "spectral.parquet"), sp)
    # changed settings -> new cache keys for that block only
    cfg2 = ExtractConfig(blocks=("spectral",), options={"spectral": {"n_mfcc": 13}})
    third = run(bad_dir, out, cfg2, progress=False)
    assert third.cached == 0 and "spectral__mfcc_12_mean" in third.tables["spectral"].columns
    assert "spectral__mfcc_13_mean" not in third.tables["spectral"].columns


def test_parallel_matches_serial(tmp_path):
    d = tmp_path / "audio"
    d.mkdir()
    for i in range(4):
        sf.write(d / f"s{i}.wav", synth_song(["thump", "tick"][i % 2], seconds=3.0, seed=i), SR)
    serial = run(d, tmp_path / "a", ExtractConfig(blocks=("spectral",)), progress=False).tables["spectral"]
    par = run(d, tmp_path / "b", ExtractConfig(blocks=("spectral",), jobs=2),
              progress=False).tables["spectral"]
    # Same files, same features; float32 reductions may differ in the last digits when the
    # workers' BLAS/OpenMP thread count differs from the parent's.
    pd.testing.assert_frame_equal(serial, par, check_exact=False, rtol=1e-4, atol=1e-5)


def test_a_worker_crash_costs_only_its_file(tmp_path):
    d = tmp_path / "audio"
    d.mkdir()
    for name in ("a.wav", "crash.wav", "b.wav", "c.wav"):
        sf.write(d / name, synth_song("tick", seconds=1.0, seed=len(name)), SR)
    s = run(d, tmp_path / "o", ExtractConfig(blocks=("recsys.testing.audio:CrashBlock",), jobs=2),
            progress=False)
    t = _by_file(s.tables["crashy"])
    assert not t["crash.wav"].ok and "worker process crashed" in t["crash.wav"].reason
    assert all(t[f].ok for f in ("a.wav", "b.wav", "c.wav"))
    assert list(s.failures["kind"]) == ["error"]  # not cached: a rerun tries again


def test_config_errors_are_raised_before_any_work(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(InputError, match="unknown feature block"):
        run(tmp_path, tmp_path / "o", ExtractConfig(blocks=("nope",)), progress=False)
    with pytest.raises(InputError, match="block.key=value"):
        parse_sets(["cnnmodel"])
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputError, match="no audio files"):
        run(tmp_path / "nothing", tmp_path / "o2", ExtractConfig(), progress=False)
    with pytest.raises(InputError, match="not requested"):
        run(tmp_path, tmp_path / "o3", ExtractConfig(options={"cnn": {"model": "x"}}), progress=False)


def test_kill_9_midway_then_resume_redoes_nothing_finished(tmp_path):
    d = tmp_path / "audio"
    d.mkdir()
    for i in range(16):
        sf.write(d / f"t{i:02d}.wav", synth_song("drone", seconds=1.0, seed=i), SR)
    out, log1, log2 = tmp_path / "feat", tmp_path / "calls1.log", tmp_path / "calls2.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]),
           "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-c", "from recsys.cli import main; main()", "features", "extract",
           "--audio-dir", str(d), "--out", str(out), "--blocks", "recsys.testing.audio:SlowBlock",
           "--set", "slow.delay=0.25", "--set", f"slow.log={log1}", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    cache = out / "cache" / "slow"
    deadline = time.time() + 90
    while time.time() < deadline and len(list(cache.glob("*.json"))) < 4:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # all parse: none corrupted
    done_before = {json.loads(p.read_text())["file"] for p in cache.glob("*.json")}
    assert 4 <= len(done_before) < 16, "the run was not killed midway"
    assert not (out / "slow.parquet").exists()

    cfg = ExtractConfig(blocks=("recsys.testing.audio:SlowBlock",),
                        options={"slow": {"delay": 0.0, "log": str(log2)}})
    summary = run(d, out, cfg, progress=False)
    redone = set(log2.read_text().split())
    assert not redone & done_before  # finished tracks were not recomputed
    assert redone | done_before == {f"t{i:02d}.wav" for i in range(16)}
    assert summary.cached == len(done_before) and summary.computed == 16 - len(done_before)
    table = pd.read_parquet(out / "slow.parquet")
    assert table["ok"].all() and len(table) == 16
