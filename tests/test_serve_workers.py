"""`recsys serve --workers 2`: two processes on one port; a reload (HTTP or SIGHUP) reaches both, no request
fails meanwhile."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")


def _generations(url: str, tries: int = 30) -> dict[int, int]:
    """worker pid -> generation, from health answers on fresh connections."""
    seen: dict[int, int] = {}
    for _ in range(tries):
        with httpx.Client(base_url=url, timeout=20) as c:
            body = c.get("/api/health").json()
        seen[body["worker_pid"]] = body["generation"]
    return seen


def _wait_all(url: str, generation: int, timeout: float = 90) -> dict[int, int]:
    t0 = time.monotonic()
    while True:
        seen = _generations(url)
        if len(seen) >= 2 and all(g == generation for g in seen.values()):
            return seen
        assert time.monotonic() - t0 < timeout, f"workers did not all reach generation {generation}: {seen}"
        time.sleep(0.3)


@pytest.mark.slow
def test_two_workers_share_the_port_and_reload_together(tmp_path):
    from recsys.engine import Engine
    from recsys.testing.engine import fast_config, make_catalog

    out = tmp_path / "index"
    Engine.build(make_catalog(60), simulate_users=20, out=out, config=fast_config(genre_probs=False), seed=0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "server.log", "w")  # a file: a pipe nobody drains would block the server
    proc = subprocess.Popen([sys.executable, "-m", "recsys.cli", "serve", "--index", str(out), "--port",
                             str(port), "--workers", "2"], stdout=log, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "RECSYS_ADMIN_TOKEN": "t0ken"})
    errors: list[str] = []
    done = threading.Event()
    try:
        t0 = time.monotonic()
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            try:
                if httpx.get(url + "/api/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() - t0 < 120, "server did not start"
            time.sleep(0.3)
        first = _wait_all(url, 0)
        # one engine thread per core in all by default: cores / workers per process
        health = httpx.get(url + "/api/health", timeout=5).json()
        assert health["engine_threads"] == max(1, (os.cpu_count() or 1) // 2)
        # an idle keep-alive connection outlives a client's own idle expiry (httpx: 5 s), so the client
        # drops it first; at uvicorn's default 5 s the second request here fails (RemoteDisconnected)
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/health")
        assert conn.getresponse().read()
        time.sleep(6)
        conn.request("GET", "/api/health")
        assert conn.getresponse().status == 200
        conn.close()

        def hammer() -> None:
            with httpx.Client(base_url=url, timeout=30) as c:
                i = 0
                while not done.is_set():
                    try:
                        r = c.post("/api/recommend", json={"recent": [f"t{i % 60:04d}"], "k": 5})
                    except httpx.HTTPError as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                    i += 1

        threads = [threading.Thread(target=hammer) for _ in range(2)]
        for t in threads:
            t.start()
        r = httpx.post(url + "/api/admin/reload", timeout=60, headers={"X-Recsys-Admin-Token": "t0ken"})
        assert r.status_code == 200 and r.json()["generation"] == 1
        assert set(_wait_all(url, 1)) == set(first)  # the same two processes, both reloaded
        proc.send_signal(signal.SIGHUP)
        _wait_all(url, 2)
        done.set()
        for t in threads:
            t.join()
        # a burst of connections is spread over both workers (one socket each): on one shared socket,
        # the first worker to wake accepted the whole burst
        burst = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(16)]
        pids = set()
        for s in burst:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for s in burst:
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            pids.add(json.loads(data.split(b"\r\n\r\n", 1)[1])["worker_pid"])
            s.close()
        assert pids == set(first), pids
        # a dead worker is replaced, on its own socket: connections waiting there are served
        os.kill(next(iter(first)), signal.SIGKILL)
        t0 = time.monotonic()
        while True:
            seen = _generations(url, 12)
            if len(seen) == 2 and set(seen) != set(first):
                break
            assert time.monotonic() - t0 < 90, f"the killed worker was not replaced: {seen}"
            time.sleep(0.5)
        assert all(g == 2 for g in seen.values()), seen  # the new worker starts at the current generation
    finally:
        done.set()
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    err = (tmp_path / "server.log").read_text()
    assert not errors, errors[:3]
    assert "2 worker processes" in err
