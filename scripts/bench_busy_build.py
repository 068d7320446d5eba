#!/usr/bin/env python
"""build-index of the demo catalogue on a quiet machine and beside a busy core, side by side.

    python scripts/bench_busy_build.py [--repeats 2] [--users 500]

Starts one busy-loop process (a neighbour hogging a core) for the "busy" runs and kills it after.
Each configuration runs the real CLI in a fresh process; wall times are printed with the ratio
busy/quiet. ``--compare-unlimited`` also runs with the thread defaults of ``recsys.threads`` undone
(2 BLAS threads, active OpenMP waits) to show what the defaults buy.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECSYS = [sys.executable, "-m", "recsys.cli"]
UNLIMITED = {"OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2",
             "KMP_BLOCKTIME": "200"}


def build_once(out: Path, users: int, env: dict[str, str]) -> float:
    """Wall seconds of one `recsys build-index` in a fresh process."""
    cmd = [*RECSYS, "build-index", "--catalog", str(ROOT / "data" / "spotify_demo.csv.gz"),
           "--simulate-users", str(users), "--out", str(out), "--force"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def busy_loop() -> subprocess.Popen:
    """A process that keeps one core at 100 % until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--compare-unlimited", action="store_true")
    args = ap.parse_args()
    base = {k: v for k, v in os.environ.items() if k not in UNLIMITED}
    configs = [("defaults", base)]
    if args.compare_unlimited:
        configs.append(("unlimited threads", {**base, **UNLIMITED}))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "idx"
        rows = []
        for label, env in configs:
            quiet = [build_once(out, args.users, env) for _ in range(args.repeats)]
            hog = busy_loop()
            try:
                busy = [build_once(out, args.users, env) for _ in range(args.repeats)]
            finally:
                hog.kill()
                hog.wait()
            rows.append((label, statistics.median(quiet), statistics.median(busy)))
    print(f"build-index, demo catalogue (2,107 tracks), {args.users} simulated users; "
          f"median of {args.repeats}")
    print(f"{'threads':20s} {'quiet s':>8s} {'busy s':>8s} {'busy/quiet':>10s}")
    for label, q, b in rows:
        print(f"{label:20s} {q:8.1f} {b:8.1f} {b / q:10.2f}")


if __name__ == "__main__":
    main()
