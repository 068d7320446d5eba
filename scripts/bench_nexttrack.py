"""Engine.recommend latency on real contexts: each sampled playlist's plays but the last, k=10, with reasons.

    python scripts/bench_nexttrack.py --index out/mpd_idx \
        --histories ../shared/data/playlists/mpd_dev_playlists.tsv.gz --queries 1000

Prints p50 / p90 / p99 / max in milliseconds, the recommender's mode and the 1-minute load average.
``--busy 1`` keeps one core busy with a spinning process meanwhile (a busy 2-core box, reproducibly);
``--no-cut`` times each context also with the ranker's cascade off (``ranker.cut_trees = 0``), so the
two are compared as a ratio in one run. ``--baseline-src OLD_TREE`` (e.g. a ``git worktree`` of an older
commit) times that tree's code too, in its own process, on the same contexts: the processes take turns
(``--block`` contexts each), so both see the same load, and the ratios new / old are printed.
``--many`` also times ``Engine.recommend_many`` (in a process of its own, so its caches see what the
loop's see) over each block: total / contexts. Research data stays where it is: the script only reads it.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
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


def sample_contexts(eng: Engine, histories: str, n: int, seed: int) -> list[list[str]]:
    """``n`` random playlists of the histories (2+ known tracks), each but its last track (up to 100)."""
    h = read_histories(histories)
    h = h[h["track_id"].isin(set(eng.recommender.data.content.labels.tolist()))]
    groups = [g["track_id"].tolist() for _, g in h.groupby("user_id", sort=False) if len(g) >= 2]
    pick = np.random.default_rng(seed).choice(len(groups), min(n, len(groups)), replace=False)
    return [groups[i][:-1][-100:] for i in pick]


def time_block(eng: Engine, contexts: list[list[str]], k: int, how: str, cut: int | None,
               cache: bool = True) -> list[float]:
    """Milliseconds per context: one ``recommend`` call each (``loop``), or ``recommend_many`` of the
    whole block divided evenly (``many``); ``cache`` False turns the content source's FAISS cache off."""
    content = eng.recommender.sources.get("content")
    if not cache and hasattr(content, "resize_cache"):
        content.resize_cache(0)
    ranker = eng.recommender.ranker
    if ranker is not None and cut is not None:
        ranker.config.ranker.cut_trees = cut
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if how == "many":
            t0 = time.perf_counter()
            eng.recommend_many(contexts, k)
            return [(time.perf_counter() - t0) * 1000 / len(contexts)] * len(contexts)
        out = []
        for ctx in contexts:
            t0 = time.perf_counter()
            eng.recommend(ctx, k)
            out.append((time.perf_counter() - t0) * 1000)
        return out


def worker(index: str) -> None:
    """Serve ``{"contexts", "k", "how", "cut"}`` lines on stdin with a line of timings each (--worker)."""
    eng = Engine.load(index)
    print(json.dumps({"mode": eng.recommender.mode}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        print(json.dumps(time_block(eng, job["contexts"], job["k"], job["how"], job["cut"], job["cache"])),
              flush=True)


class Worker:
    """A --worker process over one source tree (``src``: prepended to PYTHONPATH; None: this tree)."""

    def __init__(self, index: str, src: str | None) -> None:
        env = dict(os.environ)
        if src:
            env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.p = subprocess.Popen([sys.executable, __file__, "--worker", "--index", index], env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.mode = json.loads(self.p.stdout.readline())["mode"]

    def run(self, contexts: list[list[str]], k: int, how: str, cut: int | None, cache: bool) -> list[float]:
        job = {"contexts": contexts, "k": k, "how": how, "cut": cut, "cache": cache}
        self.p.stdin.write(json.dumps(job) + "\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self) -> None:
        self.p.stdin.close()
        self.p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--histories")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--busy", type=int, default=0, help="spinning processes kept running meanwhile")
    ap.add_argument("--no-cut", action="store_true", help="also time the ranker without its cascade")
    ap.add_argument("--baseline-src", help="also time this source tree's code (e.g. a worktree of main~N)")
    ap.add_argument("--many", action="store_true", help="also time recommend_many per block (total / n)")
    ap.add_argument("--no-cache", action="store_true",
                    help="also time this tree with the content source's FAISS cache off")
    ap.add_argument("--block", type=int, default=50, help="contexts per turn of each timed process")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.index)
        return
    if not a.histories:
        ap.error("--histories is required")
    eng = Engine.load(a.index)
    contexts = sample_contexts(eng, a.histories, a.queries + a.warmup, a.seed)
    ranker = eng.recommender.ranker
    cut = 20 if ranker is None else ranker.config.ranker.cut_trees
    del eng
    # (label, source tree, how, cut, cache): each its own process, so no variant warms another's caches
    variants = [("this tree", None, "loop", cut, True)]
    if a.no_cut and ranker is not None:
        variants.append(("this tree, no cascade", None, "loop", 0, True))
    if a.no_cache:
        variants.append(("this tree, no FAISS cache", None, "loop", cut, False))
    if a.many:
        variants.append(("this tree, recommend_many", None, "many", cut, True))
    if a.baseline_src:
        variants.append((f"baseline {a.baseline_src}", a.baseline_src, "loop", cut, True))
    workers = [Worker(a.index, src) for _, src, *_ in variants]
    times: dict[str, list[float]] = {v[0]: [] for v in variants}
    spinners = [mp.Process(target=spin, daemon=True) for _ in range(a.busy)]
    for p in spinners:
        p.start()
    load0 = os.getloadavg()[0]
    try:
        for w, (_, _, how, c, cache) in zip(workers, variants):  # warm-up, not timed
            w.run(contexts[:a.warmup], a.k, how, c, cache)
        timed = contexts[a.warmup:]
        for s in range(0, len(timed), a.block):
            for w, (label, _, how, c, cache) in zip(workers, variants):  # turns: the same load for all
                times[label] += w.run(timed[s:s + a.block], a.k, how, c, cache)
        load = os.getloadavg()[0]
    finally:
        for p in spinners:
            p.terminate()
        for w in workers:
            w.close()
    print(f"{len(timed)} queries (context = a playlist but its last track, up to 100), k={a.k}, "
          f"mode {workers[0].mode}, {a.busy} busy process(es), load {load0:.2f} -> {load:.2f}, "
          f"turns of {a.block} contexts:")
    for label, t in times.items():
        t = np.asarray(t)
        if label.endswith("recommend_many"):
            print(f"  {label}: {t.mean():.2f} ms a context (total / n, blocks of {a.block})")
        else:
            print(f"  {label}: {percentiles(t)}, mean {t.mean():.2f} ms")
    base = times["this tree"]
    for label, t in times.items():
        if label == "this tree":
            continue
        if label.endswith("recommend_many"):
            print(f"  ratio recommend_many / recommend loop (means): {np.mean(t) / np.mean(base):.2f}")
            continue
        r = {q: np.percentile(base, q) / np.percentile(t, q) for q in (50, 99)}
        print(f"  ratio this tree / {label}: p50 {r[50]:.2f}, p99 {r[99]:.2f}, "
              f"mean {np.mean(base) / np.mean(t):.2f}")


if __name__ == "__main__":
    main()
