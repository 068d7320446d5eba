"""Load benchmark of ``recsys serve``: 16 concurrent clients, 2,000 POST /api/recommend, loopback only.

Starts ``recsys serve`` as a child process on a free 127.0.0.1 port, sends a fixed number of requests
(so it stops by itself), and prints errors, p50/p99 latency and requests/s beside the in-process
``Engine.recommend`` p50/p99 measured in the same run on the same request bodies. A second phase
repeats the load with ``POST /api/admin/reload`` sent when half of the requests are done.

    python scripts/bench_serve.py --index out/demo/index            # after `make demo`
    python scripts/bench_serve.py --index out/demo/index --requests 2000 --clients 16 --json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: Admin token handed to the server (RECSYS_ADMIN_TOKEN) for the reload request.
ADMIN_TOKEN = "bench-serve"


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


async def load(url: str, reqs: list[dict], clients: int, *, reload_at: int | None = None) -> dict:
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for b in reqs:
        queue.put_nowait(b)
    lat: list[float] = []
    errors: list[str] = []
    done = {"n": 0}
    reload_info: dict = {}
    reload_event = asyncio.Event()

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            try:
                r = await client.post("/api/recommend", json=body)
                ok = r.status_code == 200 and len(r.json()["recommendations"]) > 0
                if not ok:
                    errors.append(f"{r.status_code} {r.text[:120]}")
            except Exception as exc:  # a connection error counts as a failed request
                errors.append(f"{type(exc).__name__}: {exc}")
            lat.append(time.perf_counter() - t0)
            done["n"] += 1
            if reload_at is not None and done["n"] == reload_at:
                reload_event.set()

    async def reloader(client: httpx.AsyncClient) -> None:
        await reload_event.wait()
        t0 = time.perf_counter()
        r = await client.post("/api/admin/reload", headers={"X-Recsys-Admin-Token": ADMIN_TOKEN})
        reload_info.update(status=r.status_code, seconds=round(time.perf_counter() - t0, 3),
                           requests_done_before=reload_at, generation=r.json().get("generation"))

    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        t0 = time.perf_counter()
        tasks = [worker(client) for _ in range(clients)]
        if reload_at is not None:
            tasks.append(reloader(client))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
    out = {"requests": len(lat), "errors": len(errors), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
           "max_ms": pct(lat, 100), "req_per_s": round(len(lat) / wall, 1), "wall_s": round(wall, 2)}
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default="out/demo/index")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--no-reload", action="store_true", help="Skip the phase with a reload in the middle.")
    ap.add_argument("--threads", type=int, default=None,
                    help="recsys serve --threads (default: Starlette's 40).")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not Path(args.index, "manifest.json").exists():
        sys.exit(f"error: {args.index}: no index there (run `make demo` first, or pass --index)")
    from recsys.engine import Engine

    eng = Engine.load(args.index)
    reqs = bodies(eng, args.requests)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", RECSYS_ADMIN_TOKEN=ADMIN_TOKEN)
    cmd = [sys.executable, "-m", "recsys.cli", "serve", "--index", args.index, "--port", str(port)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    server = subprocess.Popen(cmd,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
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
            if time.perf_counter() - t0 > 120:
                sys.exit("error: the server did not come up within 120 s")
            time.sleep(0.2)
        startup = round(time.perf_counter() - t0, 2)
        asyncio.run(load(url, reqs[:100], args.clients))  # warm-up: connections, caches
        res = {"index": args.index, "tracks": eng.n_tracks, "clients": args.clients, "threads": args.threads,
               "server_startup_s": startup,
               "loadavg_before": round(os.getloadavg()[0], 2)}
        res["http"] = asyncio.run(load(url, reqs, args.clients))
        res["in_process"] = in_process(eng, reqs)
        if not args.no_reload:
            res["http_with_reload"] = asyncio.run(load(url, reqs, args.clients, reload_at=len(reqs) // 2))
        res["loadavg_after"] = round(os.getloadavg()[0], 2)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"{res['tracks']:,} tracks, {args.clients} clients, {args.requests:,} POST /api/recommend a phase "
          f"(server up in {startup} s; load average {res['loadavg_before']} -> {res['loadavg_after']})")
    print(f"{'phase':<28}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}")
    for name, key in (("HTTP", "http"), ("HTTP, reload in the middle", "http_with_reload")):
        if key in res:
            r = res[key]
            print(f"{name:<28}{r['errors']:>8}{r['p50_ms']:>9}{r['p99_ms']:>9}{r['req_per_s']:>9}")
    ip = res["in_process"]
    print(f"{'in-process Engine.recommend':<28}{'':>8}{ip['p50_ms']:>9}{ip['p99_ms']:>9}")
    if "http_with_reload" in res:
        rl = res["http_with_reload"]["reload"]
        print(f"reload: HTTP {rl.get('status')} after {rl.get('requests_done_before')} requests, "
              f"{rl.get('seconds')} s to load the new index (generation {rl.get('generation')})")


if __name__ == "__main__":
    main()
