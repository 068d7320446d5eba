"""Engine.recommend latency on real contexts: each sampled playlist's plays but the last, k=10, with reasons.

    python scripts/bench_nexttrack.py --index out/mpd_idx \
        --histories ../shared/data/playlists/mpd_dev_playlists.tsv.gz --queries 1000

Prints p50 / p90 / p99 / max in milliseconds, the recommender's mode and the 1-minute load average.
``--busy 1`` keeps one core busy with a spinning process meanwhile (a busy 2-core box, reproducibly);
``--no-cut`` times each context also with the ranker's cascade off (``ranker.cut_trees = 0``), so the
two are compared as a ratio in one run. Research data stays where it is: the script only reads it.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
import warnings

import numpy as np

from recsys import threads

threads.configure()  # as the `recsys` command and the server do: one BLAS thread, passive OpenMP waits

from recsys.engine import Engine  # noqa: E402
from recsys.users import read_histories  # noqa: E402


def spin() -> None:
    """A busy core: count forever (until terminated)."""
    n = 0
    while True:
        n += 1


def percentiles(t: np.ndarray) -> str:
    return (f"p50 {np.percentile(t, 50):.2f} ms, p90 {np.percentile(t, 90):.2f} ms, "
            f"p99 {np.percentile(t, 99):.2f} ms, max {t.max():.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--histories", required=True)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--busy", type=int, default=0, help="spinning processes kept running meanwhile")
    ap.add_argument("--no-cut", action="store_true", help="also time the ranker without its cascade")
    a = ap.parse_args()
    eng = Engine.load(a.index)
    h = read_histories(a.histories)
    h = h[h["track_id"].isin(set(eng.recommender.data.content.labels.tolist()))]
    groups = [g["track_id"].tolist() for _, g in h.groupby("user_id", sort=False) if len(g) >= 2]
    rng = np.random.default_rng(a.seed)
    pick = rng.choice(len(groups), min(a.queries + a.warmup, len(groups)), replace=False)
    contexts = [groups[i][:-1][-100:] for i in pick]
    ranker = eng.recommender.ranker
    variants = {"cascade": 20 if ranker is None else ranker.config.ranker.cut_trees}
    if a.no_cut and ranker is not None:
        variants["no cascade"] = 0
    times: dict[str, list[float]] = {v: [] for v in variants}
    spinners = [mp.Process(target=spin, daemon=True) for _ in range(a.busy)]
    for p in spinners:
        p.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, ctx in enumerate(contexts):
                for name, cut in variants.items():
                    if ranker is not None:
                        ranker.config.ranker.cut_trees = cut
                    t0 = time.perf_counter()
                    eng.recommend(ctx, a.k)
                    if i >= a.warmup:
                        times[name].append((time.perf_counter() - t0) * 1000)
        load = os.getloadavg()[0]
    finally:
        for p in spinners:
            p.terminate()
    mode = eng.recommender.mode
    n = len(times["cascade"])
    print(f"{n} queries (context = a playlist but its last track, up to 100), k={a.k}, mode {mode}, "
          f"{a.busy} busy process(es), load {load:.2f}:")
    for name, t in times.items():
        print(f"  {name}: {percentiles(np.asarray(t))}")
    if len(times) == 2:
        r = {q: np.percentile(times["cascade"], q) / np.percentile(times["no cascade"], q) for q in (50, 99)}
        print(f"  ratio cascade / no cascade: p50 {r[50]:.2f}, p99 {r[99]:.2f}")

if __name__ == "__main__":
    main()
