"""Extraction on a Dask cluster (2-worker LocalCluster): same blocks as the plain run, same cache,
resumable."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pipelines.extract_features import ExtractConfig, run
from recsys.testing.audio import SR, synth_song

distributed = pytest.importorskip("distributed", reason="Dask is not installed (pip install 'recsys[dask]')")
pytestmark = pytest.mark.slow  # starts a Dask cluster: not in make test-fast
ROOT = Path(__file__).resolve().parents[1]


class CountingBlock:
    """Test-only block: logs the process id each time it is constructed (a model load) and each call."""

    name = "counting"

    def __init__(self, log: str = "") -> None:
        self.log = log
        with open(log, "a") as fh:
            fh.write(f"init {os.getpid()}\n")

    def settings(self) -> dict[str, Any]:
        return {"version": 1}

    def extract(self, y: np.ndarray, sr: int, *, path: Path) -> dict[str, Any]:
        with open(self.log, "a") as fh:
            fh.write(f"file {os.getpid()} {Path(path).name}\n")
        return {"counting__peak": float(np.abs(y).max())}

    def finalize(self, table):
        return table


@pytest.fixture(scope="module")
def cluster():
    """One 2-worker LocalCluster for the module (tests reach it by its tcp:// address, like a real one)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


@pytest.fixture()
def audio(tmp_path) -> Path:
    d = tmp_path / "audio"
    (d / "sub").mkdir(parents=True)
    for i in range(5):
        sf.write(d / ("sub" if i == 4 else "") / f"s{i}.wav",
                 synth_song(["thump", "tick", "drone"][i % 3], seconds=3.0, seed=i), SR)
    # a per-file failure, reported like the local path
    (d / "broken.wav").write_bytes(b"RIFF not really audio")
    return d


def test_dask_cluster_writes_the_same_blocks_and_failures_as_the_plain_run(tmp_path, audio, cluster):
    blocks = ("spectral", "audiostats")
    plain = run(audio, tmp_path / "plain", ExtractConfig(blocks=blocks), progress=False)
    dask = run(audio, tmp_path / "dask", ExtractConfig(blocks=blocks, scheduler=cluster.scheduler_address),
               progress=False)
    assert dask.computed == plain.computed == 12 and dask.cached == 0
    for b in blocks:
        a, d = (pd.read_parquet(tmp_path / "plain" / f"{b}.parquet"),
                pd.read_parquet(tmp_path / "dask" / f"{b}.parquet"))
        assert a["ok"].sum() == 5 and list(a["file"]) == list(d["file"])
        pd.testing.assert_frame_equal(a, d, check_exact=False, rtol=1e-4, atol=1e-5)
    fa, fd = (pd.read_csv(tmp_path / p / "failures.csv") for p in ("plain", "dask"))
    pd.testing.assert_frame_equal(fa, fd)
    assert list(fd["file"].unique()) == ["broken.wav"] and set(fd["kind"]) == {"skip"}
    # same cache layout: the plain run's cache serves a Dask rerun and the other way round
    assert sorted(p.name for p in (tmp_path / "plain" / "cache").rglob("*.json")) == \
        sorted(p.name for p in (tmp_path / "dask" / "cache").rglob("*.json"))
    again = run(audio, tmp_path / "plain", ExtractConfig(blocks=blocks, scheduler=cluster.scheduler_address),
                progress=False)
    assert again.computed == 0 and again.cached == 12


def test_models_are_built_once_per_worker_not_per_file(tmp_path, audio, cluster):
    log = tmp_path / "calls.log"
    cfg = ExtractConfig(blocks=("test_scale_dask:CountingBlock",), options={"counting": {"log": str(log)}},
                        scheduler=cluster.scheduler_address)
    s = run(audio, tmp_path / "o", cfg, progress=False)
    assert s.tables["counting"]["ok"].sum() == 5
    lines = [ln.split() for ln in log.read_text().splitlines()]
    inits = Counter(pid for kind, pid, *_ in lines if kind == "init")
    files = [rest[0] for kind, _, *rest in lines if kind == "file"]
    worker_pids = {pid for kind, pid, *_ in lines if kind == "file"}
    # each file once (broken.wav fails decoding)
    assert sorted(files) == sorted(f"s{i}.wav" for i in range(5))
    assert str(os.getpid()) not in worker_pids  # the work ran on the workers
    assert all(n == 1 for n in inits.values()), inits  # one construction per process, not one per file
    assert worker_pids <= set(inits) and len(inits) <= 3  # the client's (for settings) + at most 2 workers


def test_killed_dask_run_resumes_and_redoes_nothing_finished(tmp_path, cluster):
    d = tmp_path / "audio"
    d.mkdir()
    for i in range(12):
        sf.write(d / f"t{i:02d}.wav", synth_song("drone", seconds=1.0, seed=i), SR)
    out, log1, log2 = tmp_path / "feat", tmp_path / "calls1.log", tmp_path / "calls2.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]),
           "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-c", "from recsys.cli import main; main()", "features", "extract",
           "--audio-dir", str(d), "--out", str(out), "--blocks", "recsys.testing.audio:SlowBlock",
           "--set", "slow.delay=0.4", "--set", f"slow.log={log1}", "--quiet",
           "--scheduler", cluster.scheduler_address]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    cache = out / "cache" / "slow"
    deadline = time.time() + 90
    while time.time() < deadline and len(list(cache.glob("*.json"))) < 3:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)  # tasks already running on the workers may finish and cache; none is half-written
    done_before = {json.loads(p.read_text())["file"] for p in cache.glob("*.json")}
    assert 3 <= len(done_before) < 12, "the run was not killed midway"
    assert not (out / "slow.parquet").exists()

    cfg = ExtractConfig(blocks=("recsys.testing.audio:SlowBlock",),
                        options={"slow": {"delay": 0.0, "log": str(log2)}},
                        scheduler=cluster.scheduler_address)
    summary = run(d, out, cfg, progress=False)
    redone = set(log2.read_text().split()) if log2.exists() else set()
    assert not redone & done_before
    assert redone | done_before == {f"t{i:02d}.wav" for i in range(12)}
    assert summary.cached == len(done_before) and summary.computed == 12 - len(done_before)


def test_without_scheduler_dask_is_not_imported(tmp_path, audio):
    code = ("import sys; from pipelines.extract_features import ExtractConfig, run; "
            f"run({str(audio)!r}, {str(tmp_path / 'o')!r}, ExtractConfig(blocks=('audiostats',)), "
            "progress=False); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_a_file_that_kills_its_worker_costs_only_that_file(tmp_path):
    """``--scheduler local``: files queued on the dying workers are retried alone;
    only the guilty one fails."""
    d = tmp_path / "audio"
    d.mkdir()
    for name in ("a.wav", "crash.wav", "b.wav", "c.wav", "d.wav", "e.wav", "f.wav", "g.wav", "h.wav"):
        sf.write(d / name, synth_song("tick", seconds=1.0, seed=len(name)), SR)
    cfg = ExtractConfig(blocks=("recsys.testing.audio:CrashBlock",), jobs=2, scheduler="local")
    s = run(d, tmp_path / "o", cfg, progress=False)
    t = s.tables["crashy"].set_index("file")
    assert not t.loc["crash.wav", "ok"] and "worker process crashed" in t.loc["crash.wav", "reason"]
    assert t.drop(index="crash.wav")["ok"].all()
    assert list(s.failures["kind"]) == ["error"]  # not cached: a rerun tries again
