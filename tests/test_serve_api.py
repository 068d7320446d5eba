"""HTTP API over a small index built here: every endpoint, every bad input (4xx JSON), hot reload."""
from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
sf = pytest.importorskip("soundfile")

from fastapi.testclient import TestClient

from recsys.engine import Engine
from recsys.serve import IndexHolder, ServeOptions, create_app
from recsys.testing.audio import synth_song
from recsys.testing.engine import fast_config, make_catalog

N_CAT = 120
AUDIO = ["aud_thump_0", "aud_thump_1", "aud_tick_0", "aud_tick_1", "aud_drone_0"]
UPLOAD_CAP = 400_000


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A 120-track catalogue plus 5 audio-only tracks (spectral + audiostats), a genre model, rules."""
    from pipelines.extract_features import ExtractConfig, run

    root = tmp_path_factory.mktemp("serve")
    audio = root / "audio"
    audio.mkdir()
    for i, name in enumerate(AUDIO):
        sf.write(audio / f"{name}.wav", synth_song(name.split("_")[1], seconds=4.0, seed=i), 22050)
    features = root / "features"
    run(audio, features, ExtractConfig(blocks=("spectral", "audiostats"), excerpt_seconds=None),
        progress=False)
    cat = make_catalog(N_CAT)
    eng = Engine.build(cat, features=features, simulate_users=60, out=root / "index", config=fast_config(),
                       seed=0)
    opts = ServeOptions(index=str(root / "index"), features=str(features), audio_dir=str(audio),
                        max_upload_bytes=UPLOAD_CAP, max_json_bytes=64 * 1024)
    app = create_app(opts)
    return {"root": root, "eng": eng, "opts": opts, "app": app, "audio": audio, "catalog": cat,
            "client": TestClient(app, client=("127.0.0.1", 50000))}


@pytest.fixture
def client(served):
    return served["client"]


def _no_trace(r):
    assert "Traceback" not in r.text and 'File "' not in r.text


# ---------------------------------------------------------------- endpoints

def test_health(client, served):
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["tracks"] == served["eng"].n_tracks == N_CAT + len(AUDIO)
    assert body["similar_audio_blocks"] == ["spectral", "audiostats"]
    assert body["audio_files"] == len(AUDIO)


def test_search_exact_title_first_then_prefix(client):
    r = client.get("/api/tracks", params={"q": "SONG 1", "limit": 50})
    names = [t["track_name"] for t in r.json()["results"]]
    assert names and all(n.lower().startswith("song 1") for n in names)
    assert names[0] == "Song 1"  # the exact title first
    r = client.get("/api/tracks", params={"q": "artist1_", "limit": 5})  # artist matches too
    res = r.json()["results"]
    assert len(res) == 5 and all(t["track_artist"].lower().startswith("artist1") for t in res)
    assert client.get("/api/tracks", params={"q": "zzz-no-such"}).json()["results"] == []
    assert len(client.get("/api/tracks", params={"q": "song", "limit": 3}).json()["results"]) == 3
    assert client.get("/api/tracks", params={"q": "!!!"}).json()["results"] == []  # no word: nothing


def test_engine_gate_answers_503_with_retry_after_when_the_queue_is_full():
    import asyncio

    from recsys.serve.app import Busy, EngineGate

    async def main():
        gate = EngineGate(threads=1, queue=1)
        release = asyncio.Event()
        loop = asyncio.get_running_loop()

        def block():
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result()
            return "ran"

        running = asyncio.create_task(gate.run(block))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(gate.run(lambda: "waited"))
        await asyncio.sleep(0.05)
        try:
            await gate.run(lambda: "third")
            refused = None
        except Busy as exc:
            refused = exc
        release.set()
        return await running, await waiting, refused

    ran, waited, refused = asyncio.run(main())
    assert (ran, waited) == ("ran", "waited")
    assert refused is not None and refused.status_code == 503 and refused.headers == {"Retry-After": "1"}


def test_track_detail(client, served):
    body = client.get("/api/tracks/t0005").json()
    assert body["track_id"] == "t0005" and body["track_name"] == "Song 5"
    stats = body["statistics"]
    assert set(stats) >= {"energy", "tempo", "danceability"}
    assert all(0 <= s["percentile"] <= 100 for s in stats.values() if s["percentile"] is not None)
    assert body["blocks"] == ["tabular"] and body["has_audio"] is False
    probs = body["genre_probabilities"]
    assert probs and abs(sum(probs.values()) - 1) < 1e-3
    assert np.isfinite([body["map"]["x"], body["map"]["y"]]).all()
    assert body["cluster"] == served["eng"].cluster_of("t0005")
    audio = client.get(f"/api/tracks/{AUDIO[0]}").json()
    assert "spectral" in audio["blocks"] and "audiostats" in audio["blocks"] and audio["has_audio"] is True


def test_recommend(client, served):
    r = client.post("/api/recommend", json={"recent": ["t0001", "t0002"], "k": 8})
    assert r.status_code == 200
    recs = r.json()["recommendations"]
    assert len(recs) == 8
    assert {"t0001", "t0002"}.isdisjoint(x["track_id"] for x in recs)
    assert all(x["reasons"] and isinstance(x["reasons"][0], str) for x in recs)
    assert all(set(x) >= {"track_id", "score", "reasons", "track_name", "track_artist"} for x in recs)
    direct = served["eng"].recommend(["t0001", "t0002"], k=8)
    assert [x["track_id"] for x in recs] == [d.track_id for d in direct]
    # the server's own time, for dev tools and load tests (scripts/bench_serve.py)
    name, dur = r.headers["server-timing"].split(";dur=")
    assert name == "app" and float(dur) > 0
    assert "server-timing" in client.get("/api/tracks/nope").headers  # errors carry it too


def test_similar(client, served):
    body = client.get("/api/similar/t0003", params={"k": 4}).json()
    sims = body["similar"]
    assert len(sims) == 4 and all(x["track_id"] != "t0003" for x in sims)
    assert [x["track_id"] for x in sims] == [d.track_id for d in served["eng"].similar("t0003", 4)]


def test_map_has_every_track(client, served):
    body = client.get("/api/map").json()
    pts = body["points"]
    eng = served["eng"]
    assert len(pts) == eng.n_tracks and body["sampled"] is False
    assert {p["track_id"] for p in pts} == set(eng.tracks.ids)
    p = next(p for p in pts if p["track_id"] == "t0000")
    assert p["genre"] == eng.tracks.frame.loc[0, "parent_genre"] and p["cluster"] == eng.cluster_of("t0000")
    assert body["method"] == eng.projection.method


def test_report_png(client):
    r = client.get("/api/tracks/t0004/report.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_similar_audio_finds_the_uploaded_track(client, served):
    data = (served["audio"] / f"{AUDIO[2]}.wav").read_bytes()
    r = client.post("/api/similar-audio", params={"k": 3}, files={"file": ("clip.wav", data, "audio/wav")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["blocks"] == ["spectral", "audiostats"]
    assert body["similar"][0]["track_id"] == AUDIO[2] and body["similar"][0]["score"] > 0.99
    assert len(body["similar"]) == 3 and all(x["reasons"] for x in body["similar"])


def test_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    html = r.text
    for hook in ("search", "search-result", "recommendation", "reason", "map"):
        assert f'data-testid="{hook}"' in html or f"data-testid={hook}" in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from the internet


# ---------------------------------------------------------------- bad input: 4xx JSON, never 500

def _wav(seconds: float = 1.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(22050 * seconds), np.float32), 22050, format="WAV")
    return buf.getvalue()


BAD = [
    ("get", "/api/tracks/nope", {}, 404),
    ("get", "/api/similar/nope", {}, 404),
    ("get", "/api/tracks/nope/report.png", {}, 404),
    ("post", "/api/recommend", {"json": {"recent": ["nope", "t0001"]}}, 404),
    ("post", "/api/recommend", {"content": b'{"recent": [', "headers": {"content-type": "application/json"}},
     422),
    ("post", "/api/recommend", {"content": b"recent=t0001", "headers": {"content-type": "text/plain"}}, 422),
    ("post", "/api/recommend", {}, 422),
    ("post", "/api/recommend", {"json": {"recent": "t0001"}}, 422),
    ("post", "/api/recommend", {"json": {"recent": []}}, 422),
    ("post", "/api/recommend", {"json": {"recent": [1, 2]}}, 422),
    ("post", "/api/recommend", {"json": {"recent": ["t0001"], "k": 0}}, 422),
    ("post", "/api/recommend", {"json": {"recent": ["t0001"], "k": 101}}, 422),
    ("post", "/api/recommend", {"json": {"recent": ["t0001"], "k": "5"}}, 422),
    ("post", "/api/recommend", {"json": {"recent": ["t0001"], "k": 2.5}}, 422),
    ("post", "/api/recommend", {"json": {"recent": ["t0001"], "k": None}}, 422),
    ("post", "/api/recommend", {"json": {"recent": ["t0001"], "user": "x"}}, 422),
    ("post", "/api/recommend", {"json": ["t0001"]}, 422),
    ("post", "/api/recommend", {"json": {"recent": ["t0001"] * 101}}, 422),
    ("post", "/api/recommend", {"json": {"recent": ["x" * 100] * 100, "pad": "y" * 70_000}}, 413),
    ("get", "/api/tracks", {}, 422),
    ("get", "/api/tracks?q=", {}, 422),
    ("get", "/api/tracks?q=%20%20", {}, 422),
    ("get", "/api/tracks?q=song&limit=0", {}, 422),
    ("get", "/api/tracks?q=song&limit=1000", {}, 422),
    ("get", "/api/tracks?q=song&limit=ten", {}, 422),
    ("get", "/api/tracks?q=" + "a" * 201, {}, 422),
    ("get", "/api/similar/t0001?k=0", {}, 422),
    ("get", "/api/similar/t0001?k=-3", {}, 422),
    ("get", "/api/similar/t0001?k=abc", {}, 422),
    ("post", "/api/similar-audio", {}, 422),
    ("post", "/api/similar-audio", {"files": {"file": ("clip.wav", b"", "audio/wav")}}, 422),
    ("post", "/api/similar-audio", {"files": {"file": ("clip.wav", b"RIFF....not a wav", "audio/wav")}}, 422),
    ("post", "/api/similar-audio", {"files": {"file": ("clip.txt", b"hello", "text/plain")}}, 415),
    ("post", "/api/similar-audio", {"files": {"file": ("clip.wav", b"\0" * (UPLOAD_CAP + 10), "audio/wav")}},
     413),
    ("post", "/api/similar-audio", {"files": {"file": ("silence.wav", _wav(1.0), "audio/wav")}}, 422),
    ("post", "/api/similar-audio?k=0", {"files": {"file": ("clip.wav", _wav(1.0), "audio/wav")}}, 422),
    ("get", "/api/no-such-endpoint", {}, 404),
    ("get", "/api/recommend", {}, 405),
    ("delete", "/api/tracks/t0001", {}, 405),
]


@pytest.mark.parametrize("method,url,kwargs,status", BAD, ids=[f"{m} {u[:40]} {s}" for m, u, _, s in BAD])
def test_bad_input_is_a_4xx_json_error(client, method, url, kwargs, status):
    r = client.request(method.upper(), url, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"]
    _no_trace(r)


def test_unknown_ids_are_named(client):
    r = client.post("/api/recommend", json={"recent": ["nope-1", "t0001"]})
    assert "nope-1" in r.json()["error"]
    assert "nope" in client.get("/api/tracks/nope").json()["error"]


def test_upload_cap_applies_without_content_length(served):
    """A chunked body (no Content-Length) is cut off at the cap too."""
    client = served["client"]

    def chunks():
        for _ in range(20):
            yield b"\0" * 50_000

    r = client.post("/api/similar-audio", content=chunks(),
                    headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 413 and "error" in r.json()


# ---------------------------------------------------------------- reload

def test_reload_is_loopback_only(served):
    outside = TestClient(served["app"], client=("10.1.2.3", 40000))
    r = outside.post("/api/admin/reload")
    assert r.status_code == 403 and "loopback" in r.json()["error"]


def test_reload_swaps_the_index(tmp_path):
    out = tmp_path / "idx"
    Engine.build(make_catalog(60), simulate_users=20, out=out, config=fast_config(genre_probs=False), seed=0)
    holder = IndexHolder(ServeOptions(index=str(out)))
    client = TestClient(create_app(holder.options, holder=holder, admin_token="tok"), client=("127.0.0.1", 1),
                        headers={"X-Recsys-Admin-Token": "tok"})
    old = holder.current
    assert client.get("/api/health").json()["tracks"] == 60
    Engine.build(make_catalog(80, seed=1), simulate_users=20, out=out, config=fast_config(genre_probs=False),
                 seed=0)
    r = client.post("/api/admin/reload")
    assert r.status_code == 200 and r.json()["tracks"] == 80 and r.json()["generation"] == 1
    assert client.get("/api/health").json()["tracks"] == 80
    # a request that took the old snapshot still answers from it
    assert old.n == 60 and old.engine.recommend(["t0001"], k=3)
    # a broken index on disk: the reload fails with a JSON 409, the previous index keeps serving
    (out / "manifest.json").write_text("{broken")
    r = client.post("/api/admin/reload")
    assert r.status_code == 409 and "previous index" in r.json()["error"]
    assert client.get("/api/health").json()["tracks"] == 80


def test_no_request_fails_during_reloads(served):
    """Recommend from 4 threads over a real loopback server while the index is reloaded 5 times."""
    import httpx

    from recsys.serve.testing import serve_in_thread

    holder = IndexHolder(served["opts"])
    app = create_app(served["opts"], holder=holder)
    errors: list[str] = []
    done = threading.Event()
    counts = [0] * 4
    with serve_in_thread(app) as url:
        def hammer(i: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as c:
                while not done.is_set():
                    recent = [f"t{(i * 7 + counts[i]) % N_CAT:04d}"]
                    r = c.post("/api/recommend", json={"recent": recent, "k": 5})
                    if r.status_code != 200 or len(r.json()["recommendations"]) != 5:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                    counts[i] += 1

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        with httpx.Client(base_url=url, timeout=60,
                          headers={"X-Recsys-Admin-Token": app.state.admin_token}) as admin:
            for _ in range(5):
                assert admin.post("/api/admin/reload").status_code == 200
        done.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert holder.reloads == 5 and sum(counts) > 0


def test_openapi_lists_the_paths(client):
    paths = set(json.loads(client.get("/api/openapi.json").text)["paths"])
    assert paths >= {"/api/health", "/api/tracks", "/api/tracks/{track_id}", "/api/recommend",
                     "/api/similar/{track_id}", "/api/map", "/api/tracks/{track_id}/report.png",
                     "/api/similar-audio", "/api/admin/reload"}


def test_cli_serve_logs_one_line_per_request_and_reloads_on_sighup(served):
    """`recsys serve` in its own process: loopback bind, one log line per request, SIGHUP reloads."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "recsys.cli", "serve", "--index", served["opts"].index, "--port", str(port),
           "--threads", "3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    health_ok = 0

    def health():
        nonlocal health_ok
        r = httpx.get(url + "/api/health", timeout=5)
        health_ok += r.status_code == 200
        return r.json()

    try:
        t0 = time.monotonic()
        while True:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            try:
                body = health()
                break
            except httpx.TransportError:
                assert time.monotonic() - t0 < 120, "server did not start"
                time.sleep(0.2)
        assert body["generation"] == 0
        assert httpx.get(url + "/api/tracks/nope").status_code == 404
        proc.send_signal(signal.SIGHUP)
        t0 = time.monotonic()
        while health()["generation"] != 1:
            assert time.monotonic() - t0 < 60, "SIGHUP did not reload the index"
            time.sleep(0.2)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "serving " in err and f"http://127.0.0.1:{port}/" in err
    lines = err.splitlines()
    assert sum("GET /api/health 200" in line for line in lines) == health_ok
    assert sum("GET /api/tracks/nope 404" in line for line in lines) == 1
    assert any("reloaded" in line for line in lines)


def test_map_is_a_seeded_sample_above_the_cap(served, monkeypatch):
    import recsys.serve.state as state

    monkeypatch.setattr(state, "MAP_MAX_POINTS", 50)
    snap = state.Snapshot(served["eng"], served["opts"])
    body = json.loads(snap.map_json())
    assert body["sampled"] is True and len(body["points"]) == 50 and body["total"] == served["eng"].n_tracks
    again = json.loads(state.Snapshot(served["eng"], served["opts"]).map_json())
    assert [p["track_id"] for p in again["points"]] == [p["track_id"] for p in body["points"]]


def test_cli_serve_refuses_a_missing_index_before_binding(tmp_path):
    from click.testing import CliRunner

    from recsys.cli import main

    res = CliRunner().invoke(main, ["serve", "--index", str(tmp_path / "nope"), "--port", "0"])
    assert res.exit_code == 2 and res.output.startswith("error:") and "Traceback" not in res.output
