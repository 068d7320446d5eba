"""Load benchmark of ``recsys serve`` (loopback only) and of the track search.

``http`` (default): starts ``recsys serve`` as a child process on a free 127.0.0.1 port for each
``--workers`` value (and, with ``--baseline-src DIR``, the same server from another source tree, e.g.
a checkout of an older commit, just before it at each ``--workers`` value), sends a fixed number of
POST /api/recommend from 1, 4 and 16 clients, and prints errors, p50/p99 latency and requests/s (and
the server's own p50/p99 from its ``Server-Timing`` header, which leaves out the client's waiting for a
core) beside the in-process
``Engine.recommend`` p50/p99 on the same bodies; a phase with ``POST /api/admin/reload`` sent halfway;
``--overload 64`` then runs 64 clients for 20 s and counts status codes (only 200 and 503 allowed).
When an answer goes wrong, the first error of each kind (and when it came) and the server's own log,
its access lines of 200/503 left out, are printed too. The client (``--client lean``, the default) is a
keep-alive HTTP/1.1 connection per client over asyncio streams; its CPU per request is printed, since
on a small box it shares the cores with the server (``--client httpx``: the heavier client of earlier
rounds, for comparison).
``search``: a seeded synthetic catalogue (words drawn from a real catalogue's titles, artists and
albums) of each ``--sizes``, its search.sqlite built with recsys.search, and exact-title and
half-title prefix queries timed in process; reports p50/p99 and how often a track with exactly the
queried title (and the queried track itself) is in the top 5.

    python scripts/bench_serve.py --index out/demo/index            # after `make demo`
    python scripts/bench_serve.py --index out/demo/index --workers 1 2 --clients 1 4 16 --json
    python scripts/bench_serve.py search --sizes 250000 1000000
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


#: an access-log line of a request answered 200 or 503 (left out of the server log the report keeps)
ACCESS_LINE = re.compile(r" (GET|POST) /api/\S+ (200|503) ")

#: Admin token handed to the server (RECSYS_ADMIN_TOKEN) for the reload request.
ADMIN_TOKEN = "bench-serve"

#: Seconds a request may take before the client gives up on it (counted as an error).
TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bodies(eng, n: int, seed: int = 0) -> list[dict]:
    """n request bodies: 1-5 recent tracks, from simulated users' plays when the index has them."""
    rng = np.random.default_rng(seed)
    played = np.flatnonzero(eng.popularity > 0)
    pool = played if len(played) >= 50 else np.arange(eng.n_tracks)
    ids = eng.tracks.ids
    return [{"recent": [str(ids[r]) for r in rng.choice(pool, size=int(rng.integers(1, 6)), replace=False)],
             "k": 10} for _ in range(n)]


def pct(values, q) -> float:
    return round(float(np.percentile(np.asarray(values) * 1000, q)), 2)


class LeanConnection:
    """One keep-alive HTTP/1.1 connection over asyncio streams, Content-Length bodies only: ~0.2 ms of
    client CPU a request where httpx's AsyncClient takes ~2.5 ms. On a 2-core box the client shares the
    cores with the server, so a heavy client measures itself (docs/serve.md, round 8)."""

    def __init__(self, url: str) -> None:
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict, headers: dict | None = None) -> tuple[int, dict, bytes]:
        """(status, lower-cased headers, body) of one POST; an error or a timeout closes the connection
        (the next call opens a new one) and raises."""
        try:
            async with asyncio.timeout(TIMEOUT_S):
                status, hdr, payload = await self._exchange(path, json.dumps(body).encode(), headers or {})
        except BaseException:
            await self.close()
            raise
        if hdr.get("connection", "").lower() == "close":
            await self.close()
        return status, hdr, payload

    async def _exchange(self, path: str, data: bytes, headers: dict) -> tuple[int, dict, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                          f"{extra}Content-Length: {len(data)}\r\n\r\n".encode() + data)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        hdr = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in head[1:] if ln)}
        if "content-length" not in hdr:
            raise ValueError(f"no Content-Length in the answer ({hdr.get('transfer-encoding', '?')})")
        return status, hdr, await self.reader.readexactly(int(hdr["content-length"]))

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


class HttpxConnection:
    """The same ``post`` through httpx's AsyncClient (``--client httpx``: the client of rounds 1-7)."""

    def __init__(self, url: str) -> None:
        import httpx

        self.client = httpx.AsyncClient(base_url=url, timeout=TIMEOUT_S)

    async def post(self, path: str, body: dict, headers: dict | None = None) -> tuple[int, dict, bytes]:
        r = await self.client.post(path, json=body, headers=headers)
        return r.status_code, dict(r.headers), r.content

    async def close(self) -> None:
        await self.client.aclose()


CLIENTS = {"lean": LeanConnection, "httpx": HttpxConnection}


async def load(url: str, reqs: list[dict], clients: int, *, reload_at: int | None = None,
               client: str = "lean") -> dict:
    """``clients`` connections posting ``reqs`` (each body once); latency, the server's own time and
    errors; ``reload_at``: a reload is asked after that many answers."""
    queue: asyncio.Queue = asyncio.Queue()
    for b in reqs:
        queue.put_nowait(b)
    lat: list[float] = []
    server: list[float] = []  # the server's own time (Server-Timing), without the client's waiting
    errors: list[str] = []
    done = {"n": 0}
    reload_info: dict = {}
    reload_event = asyncio.Event()

    async def worker() -> None:
        conn = CLIENTS[client](url)
        try:
            while True:
                try:
                    body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                try:
                    status, hdr, payload = await conn.post("/api/recommend", body)
                    ok = status == 200 and len(json.loads(payload)["recommendations"]) > 0
                    if not ok:
                        errors.append(f"{status} {payload[:120]!r}")
                    timing = hdr.get("server-timing", "")
                    if "dur=" in timing:
                        server.append(float(timing.split("dur=")[1].split(",")[0]) / 1000)
                except Exception as exc:  # a connection error counts as a failed request
                    errors.append(f"{type(exc).__name__}: {exc}")
                lat.append(time.perf_counter() - t0)
                done["n"] += 1
                if reload_at is not None and done["n"] == reload_at:
                    reload_event.set()
        finally:
            await conn.close()

    async def reloader() -> None:
        await reload_event.wait()
        conn = LeanConnection(url)
        t0 = time.perf_counter()
        status, _, payload = await conn.post("/api/admin/reload", {}, {"X-Recsys-Admin-Token": ADMIN_TOKEN})
        await conn.close()
        reload_info.update(status=status, seconds=round(time.perf_counter() - t0, 3),
                           requests_done_before=reload_at, generation=json.loads(payload).get("generation"))

    t0, cpu0 = time.perf_counter(), time.process_time()
    tasks = [worker() for _ in range(clients)]
    if reload_at is not None:
        tasks.append(reloader())
    await asyncio.gather(*tasks)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    out = {"requests": len(lat), "errors": len(errors), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
           "max_ms": pct(lat, 100), "req_per_s": round(len(lat) / wall, 1), "wall_s": round(wall, 2),
           "client_cpu_ms": round(cpu / max(len(lat), 1) * 1000, 3)}
    if server:
        out.update(server_p50_ms=pct(server, 50), server_p99_ms=pct(server, 99))
    if errors:
        out["first_errors"] = errors[:3]
    if reload_at is not None:
        out["reload"] = reload_info
    return out


def in_process(eng, reqs: list[dict]) -> dict:
    for b in reqs[:50]:  # warm-up
        eng.recommend(b["recent"], k=b["k"])
    lat = []
    for b in reqs:
        t0 = time.perf_counter()
        eng.recommend(b["recent"], k=b["k"])
        lat.append(time.perf_counter() - t0)
    return {"calls": len(lat), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}


async def overload(url: str, reqs: list[dict], clients: int, seconds: float, *,
                   client: str = "lean") -> dict:
    """``clients`` loops posting for ``seconds``: every answer must be 200 or 503 (with Retry-After)."""
    codes: dict[str, int] = {}
    first: dict[str, str] = {}  # per failure kind, its first message and when (s into the phase)
    t0 = time.perf_counter()
    t_end = t0 + seconds

    async def worker(i: int) -> None:
        conn = CLIENTS[client](url)
        j = i
        try:
            while time.perf_counter() < t_end:
                try:
                    status, hdr, _ = await conn.post("/api/recommend", reqs[j % len(reqs)])
                    key = str(status)
                    if status == 503 and "retry-after" not in hdr:
                        key = "503 without Retry-After"
                except Exception as exc:
                    key = type(exc).__name__
                    first.setdefault(key, f"{exc!r} at {time.perf_counter() - t0:.2f} s")
                codes[key] = codes.get(key, 0) + 1
                j += clients
        finally:
            await conn.close()

    await asyncio.gather(*(worker(i) for i in range(clients)))
    out = {"clients": clients, "seconds": seconds, "codes": codes}
    if first:
        out["first_errors"] = first
    return out


def start_server(index: str, *, workers: int, src: str | None, threads: int | None,
                 engine_threads: int | None = None, engine_processes: int = 0, log=None) -> tuple:
    """Start ``recsys serve`` on a free port and wait until every worker answers; its output goes to
    ``log`` (an open file) or nowhere."""
    port = free_port()
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", RECSYS_ADMIN_TOKEN=ADMIN_TOKEN)
    if src:
        env["PYTHONPATH"] = src
    cmd = [sys.executable, "-m", "recsys.cli", "serve", "--index", str(Path(index).resolve()),
           "--port", str(port)]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    if threads:
        cmd += ["--threads", str(threads)]
    if engine_threads:
        cmd += ["--engine-threads", str(engine_threads)]
    if engine_processes:
        cmd += ["--engine-processes", str(engine_processes)]
    out = log if log is not None else subprocess.DEVNULL
    server = subprocess.Popen(cmd, env=env, cwd=src or None, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    import httpx

    t0 = time.perf_counter()
    while True:
        if server.poll() is not None:
            sys.exit(f"error: the server exited with status {server.returncode}")
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.perf_counter() - t0 > 300:
            server.kill()
            sys.exit("error: the server did not come up within 300 s")
        time.sleep(0.2)
    if workers > 1:  # every worker up (each loads the index): until health has come from all of them
        pids: set = set()
        while len(pids) < workers and time.perf_counter() - t0 < 300:
            pids.add(httpx.get(url + "/api/health", timeout=30, headers={"Connection": "close"})
                     .json().get("worker_pid"))
    return server, url, round(time.perf_counter() - t0, 2)


def stop(server) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()


def serve_phases(args, reqs: list[dict], label: str, src: str | None, workers: int, log,
                 engine_processes: int = 0) -> dict:
    """One server's load phases (and overload); its log (``log``, an open file) is kept in the report,
    access lines of 200/503 left out, when an answer went wrong."""
    server, url, startup = start_server(args.index, workers=workers, src=src, threads=args.threads,
                                        engine_threads=args.engine_threads,
                                        engine_processes=engine_processes, log=log)
    try:
        asyncio.run(load(url, reqs[:100], 4, client=args.client))  # warm-up: connections, caches
        run = {"server": label, "workers": workers, "engine_processes": engine_processes,
               "startup_s": startup, "client": args.client, "phases": []}
        for clients in args.clients:
            n = args.requests if clients > 1 else max(200, args.requests // 4)
            r = asyncio.run(load(url, reqs[:n], clients, client=args.client))
            run["phases"].append({"clients": clients, "reload": False, **r})
            if not args.no_reload and clients == max(args.clients):
                r = asyncio.run(load(url, reqs[:n], clients, reload_at=n // 2, client=args.client))
                run["phases"].append({"clients": clients, "reload": True, **r})
        if args.overload:
            run["overload"] = asyncio.run(overload(url, reqs, args.overload, args.overload_seconds,
                                                   client=args.client))
            import httpx

            run["alive_after_overload"] = httpx.get(url + "/api/health", timeout=30).status_code == 200
    finally:
        stop(server)
    codes = set(run.get("overload", {}).get("codes", {}))
    if any(p["errors"] for p in run["phases"]) or codes - {"200", "503"}:
        log.seek(0)  # what the server said beside its access log: a server fault or a client one
        run["server_log"] = [ln.rstrip() for ln in log if not ACCESS_LINE.search(ln)][-30:]
    return run


def http_bench(args) -> dict:
    if not Path(args.index, "manifest.json").exists():
        sys.exit(f"error: {args.index}: no index there (run `make demo` first, or pass --index)")
    from recsys.engine import Engine

    eng = Engine.load(args.index)
    reqs = bodies(eng, args.requests)
    res = {"index": args.index, "tracks": eng.n_tracks, "loadavg_before": round(os.getloadavg()[0], 2),
           "in_process": in_process(eng, reqs[: min(len(reqs), 1000)]), "servers": []}
    del eng
    servers = []
    for w in args.workers:  # with a baseline: the two trees take turns at each --workers value
        if args.baseline_src:
            servers.append((f"baseline {args.baseline_src}", args.baseline_src, w, 0))
        servers.append(("this tree", None, w, 0))
    servers += [(f"this tree, {n} engine processes", None, 1, n) for n in args.engine_processes]
    for label, src, workers, engines in servers:
        with tempfile.TemporaryFile("w+") as log:  # the server's log, read back when an answer went wrong
            run = serve_phases(args, reqs, label, src, workers, log, engines)
        res["servers"].append(run)
        print(json.dumps(run), file=sys.stderr)
    res["loadavg_after"] = round(os.getloadavg()[0], 2)
    return res


def synthetic_catalog(n: int, *, seed: int, source: str) -> "object":
    """n synthetic tracks whose title/artist/album words follow a real catalogue's word frequencies."""
    import pandas as pd

    cat = pd.read_csv(source, usecols=["track_name", "track_artist", "track_album_name"])
    rng = np.random.default_rng(seed)

    def make(col: str, lo: int, hi: int, m: int) -> np.ndarray:
        words = pd.Series([w for v in cat[col].dropna().astype(str) for w in v.split()]).value_counts()
        w, p = words.index.to_numpy(object), words.to_numpy(float) / words.sum()
        lens = rng.integers(lo, hi + 1, size=m)
        parts = np.split(w[rng.choice(len(w), size=int(lens.sum()), p=p)], np.cumsum(lens)[:-1])
        return np.asarray([" ".join(x) for x in parts], dtype=object)

    artists = make("track_artist", 1, 3, max(n // 10, 1))
    albums = make("track_album_name", 1, 4, max(n // 8, 1))
    return pd.DataFrame({"title": make("track_name", 1, 5, n),
                         "artist": artists[rng.integers(0, len(artists), n)],
                         "album": albums[rng.integers(0, len(albums), n)],
                         "popularity": rng.integers(0, 101, n).astype(float)})


def search_bench(args) -> dict:
    from recsys import search

    out = {"loadavg_before": round(os.getloadavg()[0], 2), "sizes": []}
    for n in args.sizes:
        df = synthetic_catalog(n, seed=args.seed, source=args.vocabulary)
        t0 = time.perf_counter()
        idx = search.build(titles=df["title"].tolist(), artists=df["artist"].tolist(),
                           albums=df["album"].tolist(),
                           prior=search.priors(plays=np.zeros(n), popularity=df["popularity"].to_numpy()))
        build_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:  # query the file as a server does, not the build's copy
            idx.save(Path(tmp) / "search.sqlite")
            mb = (Path(tmp) / "search.sqlite").stat().st_size / 1e6
            idx = search.SearchIndex.open(Path(tmp) / "search.sqlite")
            rng = np.random.default_rng(args.seed + 1)
            rows = [int(r) for r in rng.choice(n, args.queries, replace=False)
                    if search.tokens(df["title"][r])]
            idx.search("warm up", 5)
            row = {"tracks": n, "build_s": round(build_s, 1), "file_mb": round(mb, 1)}
            for kind in ("exact", "prefix"):
                lat, title_hit, self_hit = [], 0, 0
                for r in rows:
                    title = df["title"][r]
                    q = title if kind == "exact" else title[: max(2, len(title) // 2)]
                    t0 = time.perf_counter()
                    got = idx.search(q, 10)
                    lat.append(time.perf_counter() - t0)
                    if kind == "exact":
                        title_hit += any(search.key(df["title"][g]) == search.key(title) for g in got[:5])
                        self_hit += r in got[:5]
                row[kind] = {"queries": len(rows), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
                             "max_ms": pct(lat, 100)}
                if kind == "exact":
                    row[kind].update(title_in_top5=round(title_hit / len(rows), 4),
                                     track_in_top5=round(self_hit / len(rows), 4))
            out["sizes"].append(row)
            print(json.dumps(row), file=sys.stderr)
    out["loadavg_after"] = round(os.getloadavg()[0], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", nargs="?", choices=("http", "search"), default="http")
    ap.add_argument("--index", default="out/demo/index")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--baseline-src", help="PYTHONPATH of another source tree, served before this one at "
                    "each --workers value (same run).")
    ap.add_argument("--no-reload", action="store_true", help="Skip the phase with a reload in the middle.")
    ap.add_argument("--overload", type=int, default=0, help="Clients of the overload phase (0: none).")
    ap.add_argument("--overload-seconds", type=float, default=20.0)
    ap.add_argument("--client", choices=sorted(CLIENTS), default="lean",
                    help="HTTP client of the load phases: lean (asyncio streams, ~0.2 ms CPU a request) or "
                         "httpx (~2.5 ms; the client of rounds 1-7).")
    ap.add_argument("--threads", type=int, default=None, help="recsys serve --threads.")
    ap.add_argument("--engine-threads", type=int, default=None, help="recsys serve --engine-threads.")
    ap.add_argument("--engine-processes", type=int, nargs="*", default=[],
                    help="Also serve with recsys serve --engine-processes N (one HTTP process), for each N.")
    ap.add_argument("--sizes", type=int, nargs="+", default=[250_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=2, help="Synthetic catalogue seed (held out: 2; 1 was used "
                                                        "while writing recsys/search.py).")
    ap.add_argument("--vocabulary", default=str(Path(__file__).resolve().parents[1] / "data"
                                                / "spotify_demo.csv.gz"),
                    help="Catalogue whose title/artist/album words the synthetic catalogue draws from.")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = search_bench(args) if args.mode == "search" else http_bench(args)
    if args.json:
        print(json.dumps(res, indent=2))
        return
    if args.mode == "search":
        print(f"search (load average {res['loadavg_before']} -> {res['loadavg_after']})")
        print(f"{'tracks':>10}{'build s':>9}{'exact p50':>11}{'p99':>7}{'prefix p50':>12}{'p99':>7}"
              f"{'title@5':>9}{'track@5':>9}")
        for r in res["sizes"]:
            e, p = r["exact"], r["prefix"]
            print(f"{r['tracks']:>10,}{r['build_s']:>9}{e['p50_ms']:>11}{e['p99_ms']:>7}{p['p50_ms']:>12}"
                  f"{p['p99_ms']:>7}{e['title_in_top5']:>9}{e['track_in_top5']:>9}")
        return
    ip = res["in_process"]
    print(f"{res['tracks']:,} tracks; in-process Engine.recommend p50 {ip['p50_ms']} ms, "
          f"p99 {ip['p99_ms']} ms "
          f"(load average {res['loadavg_before']} -> {res['loadavg_after']})")
    print(f"{'server':<34}{'workers':>8}{'clients':>8}{'reload':>7}{'errors':>7}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'req/s':>8}{'server p50':>11}{'p99':>7}{'client CPU ms':>14}")
    for run in res["servers"]:
        for ph in run["phases"]:
            print(f"{run['server'][:33]:<34}{run['workers']:>8}{ph['clients']:>8}"
                  f"{'yes' if ph['reload'] else '':>7}{ph['errors']:>7}{ph['p50_ms']:>8}{ph['p99_ms']:>8}"
                  f"{ph['req_per_s']:>8}{ph.get('server_p50_ms', '-'):>11}{ph.get('server_p99_ms', '-'):>7}"
                  f"{ph['client_cpu_ms']:>14}")
        if "overload" in run:
            print(f"  overload {run['overload']['clients']} clients {run['overload']['seconds']} s: "
                  f"{run['overload']['codes']}; server alive after: {run['alive_after_overload']}")
            for kind, msg in run["overload"].get("first_errors", {}).items():
                print(f"    first {kind}: {msg}")
        if run.get("server_log"):
            print("  the server's log (access lines of 200/503 left out):")
            for ln in run["server_log"]:
                print(f"    {ln}")


if __name__ == "__main__":
    main()
