"""Time ``recsys build-index`` on a large synthetic catalogue (issue 19: 200k rows in <= 5 min).

    python scripts/bench_large_build.py --tracks 200000 [--users 500] [--keep DIR]

The catalogue comes from ``recsys.testing.engine.make_catalog`` (4 genres, one artist per 10 tracks);
the build runs as a separate ``python -m recsys`` process, so the time is what a user waits, and
its progress lines (the genre step's folds, the sample it fitted on) are printed as they come.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=200_000)
    ap.add_argument("--users", type=int, default=500, help="--simulate-users of the build")
    ap.add_argument("--keep", type=Path, default=None, help="work here instead of a temporary folder")
    args = ap.parse_args()
    from recsys.testing.engine import make_catalog

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-large-"))
    work.mkdir(parents=True, exist_ok=True)
    cat = work / f"catalog_{args.tracks}.parquet"
    if not cat.exists():
        make_catalog(args.tracks, n_artists=max(60, args.tracks // 10)).to_parquet(cat, index=False)
    cmd = [sys.executable, "-m", "recsys", "build-index", "--catalog", str(cat),
           "--simulate-users", str(args.users), "--out", str(work / "idx"), "--force"]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=dict(os.environ), text=True)
    dt = time.perf_counter() - t0
    load = os.getloadavg()
    print(f"build-index on {args.tracks:,} tracks, {args.users} simulated users: {dt:.1f} s "
          f"({dt / 60:.1f} min), exit {proc.returncode}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
