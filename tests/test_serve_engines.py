"""`recsys serve --engine-processes N`: recommend calls answered by N engine processes; a reload starts a new
set and retires the old one, a killed engine process is replaced; the server's log is written in batches."""
from __future__ import annotations

import io
import logging
import logging.config
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    from recsys.engine import Engine
    from recsys.testing.engine import fast_config, make_catalog

    out = tmp_path_factory.mktemp("engines") / "index"
    Engine.build(make_catalog(60), simulate_users=20, out=out, config=fast_config(genre_probs=False), seed=0)
    return out


def _alive(pids: list[int]) -> list[int]:
    out = []
    for p in pids:
        try:
            os.kill(p, 0)
            out.append(p)
        except ProcessLookupError:
            pass
    return out


def _wait_gone(pids: list[int], timeout: float = 30) -> None:
    t0 = time.monotonic()
    while _alive(pids):
        assert time.monotonic() - t0 < timeout, f"engine processes still running: {_alive(pids)}"
        time.sleep(0.2)


@pytest.mark.slow
def test_engine_processes_answer_reload_and_replace_a_dead_one(index, monkeypatch):
    from fastapi.testclient import TestClient

    from recsys.engine import Engine
    from recsys.serve import IndexHolder, ServeOptions, create_app
    from recsys.serve.answers import rec_dict
    from recsys.serve.engines import EnginePool

    monkeypatch.setattr(EnginePool, "grace", 0.5)
    eng = Engine.load(index)
    ids = [str(t) for t in eng.tracks.ids]
    contexts = [ids[i:i + 1 + i % 4] for i in range(0, 40, 3)]
    want = [[rec_dict(r) for r in eng.recommend(c, k=5)] for c in contexts]

    opts = ServeOptions(index=str(index), engine_processes=2)
    holder = IndexHolder(opts)
    first = holder.current.pool.pids()
    assert len(first) == 2 and os.getpid() not in first
    with TestClient(create_app(opts, holder=holder, admin_token="t")) as client:
        assert client.get("/api/health").json()["engine_processes"] == 2
        got = [client.post("/api/recommend", json={"recent": c, "k": 5}).json() for c in contexts]
        assert [g["recommendations"] for g in got] == want  # what the engine in this process answers
        assert client.post("/api/recommend", json={"recent": ["nope"], "k": 5}).status_code == 404

        assert holder.reload().generation == 1  # what SIGHUP and POST /api/admin/reload call
        second = holder.current.pool.pids()
        assert set(second).isdisjoint(first)
        _wait_gone(first)  # the old set stops after its grace period
        body = client.post("/api/recommend", json={"recent": contexts[0], "k": 5}).json()
        assert body["generation"] == 1 and body["recommendations"] == want[0]

        os.kill(second[0], signal.SIGKILL)  # an engine process dies: the set is replaced, the call answered
        _wait_gone(second[:1])
        r = client.post("/api/recommend", json={"recent": contexts[1], "k": 5})
        assert r.status_code == 200 and r.json()["recommendations"] == want[1]
        third = holder.current.pool.pids()
        assert len(third) == 2 and second[0] not in third
    _wait_gone(third)  # the app's shutdown stops its engine processes


def test_engine_processes_and_workers_are_exclusive(index):
    r = subprocess.run([sys.executable, "-m", "recsys.cli", "serve", "--index", str(index), "--port", "0",
                        "--workers", "2", "--engine-processes", "2"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "choose one" in r.stderr


def test_batched_log_writes_in_one_go_and_survives_a_logging_reconfiguration():
    from recsys.serve.app import BatchedLog

    class Stream(io.StringIO):
        writes = 0

        def write(self, s):
            Stream.writes += 1
            return super().write(s)

    out = Stream()
    h = BatchedLog(out, every=3600)  # the writer thread sleeps: only flush() and warnings write
    logger = logging.getLogger("recsys.test_batched")
    logger.addHandler(h)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        for i in range(50):
            logger.info("request %d", i)
        assert out.getvalue() == ""  # kept, not written per record
        h.flush()
        lines = out.getvalue().splitlines()
        assert len(lines) == 50 and lines[7].endswith("request 7") and Stream.writes == 1
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})  # as uvicorn does
        logger.info("after")
        logger.warning("at once")  # from WARNING up: written without waiting
        assert out.getvalue().splitlines()[-2:][0].endswith("after")
        assert out.getvalue().endswith("at once\n")
    finally:
        logger.removeHandler(h)
