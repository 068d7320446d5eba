"""Benchmark of the two-stage recommender: fit time (sources + ranker) and recommend latency at scale.

    OMP_NUM_THREADS=1 python scripts/bench_recommend.py --tracks 1000000 --users 100000 --queries 2000
    OMP_NUM_THREADS=1 python scripts/bench_recommend.py --tracks 28000 --users 4000      # build-time figure

Clustered random embeddings (d 32) -> FAISS index + k-means (recsys.index) -> synthetic users over the
clusters (recsys.users) -> rules -> every candidate source + LightGBM ranker (recsys.rank.fit_hybrid);
then ``--queries`` calls of ``recommend(recent, 10, reasons=True)`` with 1-10 recent played tracks,
each timed end to end (all sources, features, ranker, reasons), as wall time and as this process's
CPU time (the cost without other jobs' contention on a shared box). Not a test: prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import pandas as pd


def clustered_embeddings(n: int, d: int = 32, n_centres: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_centres, d)).astype(np.float32)
    X = centres[rng.integers(n_centres, size=n)] + 0.6 * rng.normal(size=(n, d)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


def run(n: int, users: int, queries: int, seed: int = 0) -> dict:
    from recsys.index import IndexConfig, TrackIndex
    from recsys.rank import AUDIO_STATS, fit_hybrid
    from recsys.recommend import RecommendConfig
    from recsys.rules import RulesConfig, mine_rules
    from recsys.sources import Content, Interactions, SourceData
    from recsys.users import SimulationConfig, simulate_users

    res: dict = {"tracks": n, "users": users}
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    X = clustered_embeddings(n, seed=seed)
    idx = TrackIndex(IndexConfig(seed=seed)).fit(X)
    res["index_s"] = round(time.perf_counter() - t0, 1)
    ids = np.array([f"t{i:07d}" for i in range(n)], dtype=object)
    cat = pd.DataFrame({"track_id": ids, "track_popularity": rng.integers(0, 100, n)})
    t0 = time.perf_counter()
    h = simulate_users(cat, SimulationConfig(n_users=users, seed=seed), groups=idx.clusters)
    res["simulate_s"] = round(time.perf_counter() - t0, 1)
    res["plays"] = len(h)
    row_of = {t: i for i, t in enumerate(ids)}
    stats = rng.random((n, len(AUDIO_STATS))).astype(np.float32)
    stats[:, AUDIO_STATS.index("tempo")] = 60 + 120 * stats[:, AUDIO_STATS.index("tempo")]
    stats[:, AUDIO_STATS.index("key")] = np.floor(12 * stats[:, AUDIO_STATS.index("key")])
    stats[:, AUDIO_STATS.index("mode")] = np.round(stats[:, AUDIO_STATS.index("mode")])
    content = Content(embeddings=X, index=idx, clusters=idx.clusters, labels=ids,
                      meta={"artist": np.arange(n) // 8, "album": np.arange(n) // 4},
                      catalog_popularity=cat["track_popularity"].to_numpy(dtype=np.float64), stats=stats)
    t0 = time.perf_counter()
    table = mine_rules(h, RulesConfig())
    res["rules_s"] = round(time.perf_counter() - t0, 1)
    res["rules"] = len(table)
    inter = Interactions.from_histories(h, row_of, n)
    del h

    t0 = time.perf_counter()
    rec = fit_hybrid(SourceData(content, inter), RecommendConfig())  # the rules source mines per fold
    res["fit_s"] = round(time.perf_counter() - t0, 1)
    res["recommender"] = {k: rec.info.get(k) for k in ("mode", "sources_seconds", "ranker_seconds", "queries",
                                                        "train_candidate_recall", "best_iteration")}
    played = np.flatnonzero(inter.popularity() > 0)
    times, cpu, n_out = [], [], []
    for q in range(queries + 20):
        recent = rng.choice(played, size=int(rng.integers(1, 11)), replace=False).tolist()
        t0, c0 = time.perf_counter(), time.process_time()
        out = rec.recommend(recent, 10, reasons=True)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if q >= 20:
            times.append(dt)
            cpu.append(dc)
            n_out.append(len(out))
    t = np.asarray(times) * 1000
    c = np.asarray(cpu) * 1000  # CPU time of this process: what the call costs without other jobs' contention
    res.update({"queries": queries, "p50_ms": round(float(np.percentile(t, 50)), 2),
                "p99_ms": round(float(np.percentile(t, 99)), 2), "max_ms": round(float(t.max()), 2),
                "cpu_p50_ms": round(float(np.percentile(c, 50)), 2),
                "cpu_p99_ms": round(float(np.percentile(c, 99)), 2), "mean_results": float(np.mean(n_out)),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "loadavg_1m": round(os.getloadavg()[0], 2)})
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(json.dumps(run(args.tracks, args.users, args.queries, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
