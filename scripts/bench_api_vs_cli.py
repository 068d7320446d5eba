"""Engine.build from Python against ``recsys build-index``, one after the other in one run (issue 19).

    python scripts/bench_api_vs_cli.py [--catalog data/spotify_demo.csv.gz] [--users 500] [--repeats 1]

Both run as fresh processes with the thread-related variables of this environment removed
(OMP_WAIT_POLICY, OPENBLAS/MKL/OMP_NUM_THREADS, KMP_BLOCKTIME), as a user's plain shell would have
them: the library has to set up its threads itself. Prints seconds per run, the ratio, and the load.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLEAN = ("OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "KMP_BLOCKTIME")
API = """
import sys, time
import recsys
t0 = time.perf_counter()
recsys.Engine.build(catalog=sys.argv[1], simulate_users=int(sys.argv[2]), out=sys.argv[3], force=True)
print(f"{time.perf_counter() - t0:.2f}")
"""


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", default="data/spotify_demo.csv.gz")
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in CLEAN}
    work = Path(tempfile.mkdtemp(prefix="bench-api-cli-"))
    api, cli = [], []
    for _ in range(args.repeats):
        api.append(timed([sys.executable, "-c", API, args.catalog, str(args.users), str(work / "api")], env))
        cli.append(timed([sys.executable, "-m", "recsys", "build-index", "--catalog", args.catalog,
                          "--simulate-users", str(args.users), "--out", str(work / "cli"), "--force"], env))
    load = os.getloadavg()
    print(f"Engine.build (python -c, import recsys): {', '.join(f'{t:.1f}' for t in api)} s")
    print(f"recsys build-index (CLI):                {', '.join(f'{t:.1f}' for t in cli)} s")
    print(f"ratio API / CLI (best of each): {min(api) / min(cli):.2f}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
