"""Issue 19 (reliability round 3): serve's port and admin guard, API argument types, threads inside the
library, progress off a terminal, the out-of-fold genre step on large catalogues, ``python -m recsys``."""
from __future__ import annotations

import math
import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from recsys.cli import main
from recsys.engine import Engine
from recsys.errors import RecsysError
from recsys.testing.engine import fast_config, make_catalog


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    """The command line in its own process (stderr is a pipe: not a terminal)."""
    return subprocess.run([sys.executable, "-m", "recsys.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def idx(tmp_path_factory):
    d = tmp_path_factory.mktemp("rel")
    Engine.build(make_catalog(60), simulate_users=20, out=d / "idx", config=fast_config(genre_probs=False),
                 seed=0)
    return d / "idx"


@pytest.mark.parametrize("workers, reuse_port", [(1, False), (2, False), (2, True)])
def test_serve_on_a_taken_port_fails_before_announcing(idx, workers, reuse_port):
    """Case 8: it printed "serving ... on http://127.0.0.1:P/", then `ERROR: [Errno 98]`, rc 3. With
    --workers (one SO_REUSEPORT socket each) a port held by another such group is in use too."""
    with socket.socket() as taken:
        if reuse_port:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = cli("serve", "--index", idx, "--port", port, "--workers", workers)
    assert proc.returncode == 2, proc.stderr[-1500:]
    assert f"error: port {port} is in use" in proc.stderr
    assert "serving" not in proc.stderr and "Traceback" not in proc.stderr


def test_cross_site_admin_post_is_refused(idx):
    """Case 12: a cross-site POST /api/admin/reload (loopback, Origin: http://evil.example) reloaded."""
    from recsys.serve import create_app

    app = create_app(str(idx), admin_token="s3cret")
    client = TestClient(app, client=("127.0.0.1", 50000))
    evil = client.post("/api/admin/reload", headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403, evil.text
    evil = client.post("/api/admin/reload", headers={"Origin": "http://evil.example",
                                                     "X-Recsys-Admin-Token": "s3cret"})
    assert evil.status_code == 403 and "cross-site" in evil.json()["error"]
    assert client.post("/api/admin/reload").status_code == 403  # no token: a form post cannot send one
    ok = client.post("/api/admin/reload", headers={"X-Recsys-Admin-Token": "s3cret"})
    assert ok.status_code == 200 and ok.json()["status"] == "reloaded"
    same = client.post("/api/admin/reload", headers={"X-Recsys-Admin-Token": "s3cret",
                                                     "Origin": "http://testserver"})
    assert same.status_code == 200


@pytest.mark.parametrize("call,name", [
    (lambda: Engine.load(None), "directory"),
    (lambda: Engine.build(catalog=123), "catalog"),
    (lambda: Engine.build(make_catalog(30), simulate_users=-5), "simulate_users"),
    (lambda: Engine.build(make_catalog(30), simulate_users=2.5), "simulate_users"),
    (lambda: Engine.build(make_catalog(30), seed=-1), "seed"),
    (lambda: Engine.build(make_catalog(30), blocks="tabular"), "blocks"),
])
def test_api_argument_types_name_the_parameter(call, name):
    """Case 10: TypeErrors, numpy errors, accepted nonsense, "tabular" split into letters."""
    with pytest.raises(RecsysError, match=name):
        call()


@pytest.mark.parametrize("weights", [{"rules": "abc"}, {"rules": math.nan}])
def test_recommend_weights_are_checked(idx, weights):
    """Case 10: weights={'w_rules': 'abc'} (now {'rules': 'abc'}) gave a numpy error; NaN weights gave NaN
    scores."""
    eng = Engine.load(idx)
    with pytest.raises(RecsysError, match="rules"):
        eng.recommend(["t0001"], k=3, weights=weights)


_THREADS = """
import os
import recsys
from recsys.engine import Engine
from recsys.testing.engine import fast_config, make_catalog
import recsys.index as ix
from threadpoolctl import threadpool_info
seen = {}
fit = ix.TrackIndex.fit
def spy(self, X):
    seen["blas"] = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    return fit(self, X)
ix.TrackIndex.fit = spy
Engine.build(make_catalog(60), simulate_users=0, config=fast_config(genre_probs=False), seed=0)
print(os.environ.get("OMP_WAIT_POLICY"), seen["blas"])
"""


def test_engine_build_from_python_sets_up_threads_itself():
    """Case 11: `import recsys; Engine.build(...)` took 2.5x the CLI: threads were set up by the CLI only."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "KMP_BLOCKTIME",
                        "OMP_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", _THREADS], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.split() == ["PASSIVE", "1"]


def test_large_catalogue_genre_step_samples_and_reports_folds(tmp_path):
    """Case 13: 9 min 53 s in "genre probabilities" with the bar stuck at 1/8; now fitted on a sample."""
    cat = tmp_path / "cat.csv"
    make_catalog(300).to_csv(cat, index=False)
    cfg = tmp_path / "engine.toml"
    cfg.write_text("[engine]\ngenre_max_rows = 120\ngenre_params = {n_estimators = 10}\n"
                   "[engine.index]\nn_clusters = 4\n")
    proc = cli("build-index", "--catalog", cat, "--config", cfg, "--simulate-users", 0,
               "--out", tmp_path / "idx")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stratified sample of 120" in proc.stderr
    for i in (1, 2, 3):
        assert f"genre probabilities: fold {i}/3" in proc.stderr


def test_progress_off_a_terminal_is_plain_lines(tmp_path):
    """Friction: progress bars flooded logs that are not a terminal (`make demo > file`, CI)."""
    cat = tmp_path / "cat.csv"
    make_catalog(80).to_csv(cat, index=False)
    cfg = tmp_path / "engine.toml"
    cfg.write_text("[engine]\ngenre_probs = false\n[engine.index]\nn_clusters = 4\n")
    proc = cli("build-index", "--catalog", cat, "--config", cfg, "--simulate-users", 20,
               "--out", tmp_path / "idx")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\r" not in proc.stderr and "%|" not in proc.stderr
    lines = proc.stderr.splitlines()
    # each step once, of the 7 this build runs (no genre step), with when it started
    assert [ln for ln in lines if ln.startswith("build-index: embedding (2/7) at ")]
    assert any(ln.startswith("simulating users: 20/20") for ln in lines)


def _failing_build(tmp_path) -> list[str]:
    cat = tmp_path / "cat.csv"
    make_catalog(80).to_csv(cat, index=False)
    bad = tmp_path / "plays.csv"
    bad.write_text("user_id,position\nu1,0\n")  # no track_id: fails at the histories step, mid-bar
    cfg = tmp_path / "engine.toml"
    cfg.write_text("[engine]\ngenre_probs = false\n[engine.index]\nn_clusters = 4\n")
    return [sys.executable, "-m", "recsys.cli", "build-index", "--catalog", str(cat), "--config", str(cfg),
            "--histories", str(bad), "--out", str(tmp_path / "idx")]


def test_error_gets_its_own_line_in_a_log(tmp_path):
    """Friction: `error:` lines were glued to the progress bar's text in logs (`make demo > file`)."""
    proc = subprocess.run(_failing_build(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.split("\n") if "error:" in ln]
    assert len(errors) == 1 and errors[0].startswith("error:"), repr(errors)


def test_error_gets_its_own_line_on_a_terminal(tmp_path):
    """On a terminal the bar is cleared before the `error:` line (the bar is live when the error comes)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a bar needs a width
    proc = subprocess.Popen(_failing_build(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 2
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    assert "build-index:" in text  # there was a bar to collide with
    line = next(ln for ln in text.split("\n") if "error:" in ln)
    assert line.split("\r")[-1].startswith("error:"), repr(line)


def test_python_m_recsys_runs_the_cli():
    """Friction: `python -m recsys` did not work."""
    proc = subprocess.run([sys.executable, "-m", "recsys", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "build-index" in proc.stdout and "Usage: recsys" in proc.stdout


def test_features_extract_force_replaces_instead_of_merging(tmp_path):
    """Friction: `features extract --force` said "replace" but merged into the user's folder."""
    import numpy as np
    import soundfile as sf

    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "a.wav", (0.1 * np.sin(np.arange(22050) / 10)).astype("float32"), 22050)
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.docx").write_text("x")
    r = CliRunner().invoke(main, ["features", "extract", "--audio-dir", str(audio), "--out", str(out),
                                  "--blocks", "spectral", "--quiet", "--force"])
    assert r.exit_code == 0, r.output
    assert not (out / "thesis.docx").exists() and (out / "spectral.parquet").exists()
    kept = list((tmp_path / ".recsys-trash").glob("*/out/thesis.docx"))
    assert len(kept) == 1 and str(kept[0].parent) in r.output


def test_failure_summary_counts_add_up():
    """Friction: a failures summary said 11 failures while listing 8 groups."""
    import re
    from pathlib import Path

    import pandas as pd

    from pipelines.extract_features import Summary

    reasons = [f"reason {i}" for i in range(10)] + ["reason 0"]
    failures = pd.DataFrame({"file": [f"f{i}.wav" for i in range(11)], "block": "spectral", "kind": "error",
                             "reason": reasons})
    lines = Summary(n_files=11, computed=0, cached=0, failures=failures, tables={}, seconds=0.0,
                    out=Path("out")).lines()
    head = next(ln for ln in lines if "failure(s)" in ln)
    assert int(re.search(r"(\d+) failure", head)[1]) == 11
    listed = sum(int(re.match(r"\s+(\d+) x", ln)[1]) for ln in lines if re.match(r"\s+\d+ x", ln))
    assert listed == 11
