"""Engine.recommend latency on real contexts: each sampled playlist's plays but the last, k=10, with reasons.

    python scripts/bench_nexttrack.py --index out/mpd_idx \
        --histories ../shared/data/playlists/mpd_dev_playlists.tsv.gz --queries 1000

Prints p50 / p90 / p99 / max in milliseconds, the recommender's mode and the 1-minute load average.
Research data stays where it is: the script only reads it.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from recsys import threads

threads.configure()  # as the `recsys` command and the server do: one BLAS thread, passive OpenMP waits

from recsys.engine import Engine  # noqa: E402
from recsys.users import read_histories  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--histories", required=True)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    eng = Engine.load(a.index)
    h = read_histories(a.histories)
    h = h[h["track_id"].isin(set(eng.recommender.data.content.labels.tolist()))]
    groups = [g["track_id"].tolist() for _, g in h.groupby("user_id", sort=False) if len(g) >= 2]
    rng = np.random.default_rng(a.seed)
    pick = rng.choice(len(groups), min(a.queries + a.warmup, len(groups)), replace=False)
    contexts = [groups[i][:-1][-100:] for i in pick]
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, ctx in enumerate(contexts):
            t0 = time.perf_counter()
            eng.recommend(ctx, a.k)
            if i >= a.warmup:
                times.append((time.perf_counter() - t0) * 1000)
    t = np.asarray(times)
    mode = eng.recommender.mode
    print(f"{len(t)} queries (context = a playlist but its last track, up to 100), k={a.k}, mode {mode}: "
          f"p50 {np.percentile(t, 50):.2f} ms, p90 {np.percentile(t, 90):.2f} ms, "
          f"p99 {np.percentile(t, 99):.2f} ms, max {t.max():.2f} ms; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
