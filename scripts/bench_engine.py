"""Engine benchmarks: index build and recommend latency at 10k / 100k / 1M tracks, rule mining at 50k users.

    OMP_NUM_THREADS=1 python scripts/bench_engine.py scale --sizes 10000,100000,1000000
    OMP_NUM_THREADS=1 python scripts/bench_engine.py rules --users 50000 --tracks 2000
    OMP_NUM_THREADS=1 python scripts/bench_engine.py pipeline --sizes 10000,100000,1000000
    OMP_NUM_THREADS=1 python scripts/bench_engine.py query --index /tmp/recsys_bench/idx1000000 --queries 5000

``scale``: clustered random embeddings (d=32, L2-normalised) -> TrackIndex (FAISS + k-means) ->
synthetic users over the clusters -> rules -> Recommender; then ``--queries`` recommend calls with
1-5 random recent played tracks, timing each call end to end (rule lookup, FAISS search, cluster
candidates, blending, reasons). ``pipeline``: the real Engine.build on a synthetic catalogue
(statistics -> tabular block -> embedding -> index -> users -> rules), without genre model.
``rules``: simulate N users over T tracks, then time mine_rules alone and report peak memory.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def clustered_embeddings(n: int, d: int = 32, n_centres: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_centres, d)).astype(np.float32)
    X = centres[rng.integers(n_centres, size=n)] + 0.6 * rng.normal(size=(n, d)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


def fake_catalog(n: int, seed: int = 0) -> pd.DataFrame:
    from recsys.schema import STATS

    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"track_id": [f"t{i:07d}" for i in range(n)],
                       "track_artist": [f"a{i // 8}" for i in range(n)],
                       "track_popularity": rng.integers(0, 100, n)})
    for c in STATS:
        df[c] = rng.random(n)
    df["key"] = rng.integers(0, 12, n).astype(float)
    df["mode"] = rng.integers(0, 2, n).astype(float)
    df["loudness"] = -30 + 30 * rng.random(n)
    df["tempo"] = 60 + 120 * rng.random(n)
    df["duration_ms"] = 120000 + 200000 * rng.random(n)
    return df


def latency(rec, played: np.ndarray, queries: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    times = []
    n_out = []
    for q in range(queries + 20):
        recent = rng.choice(played, size=int(rng.integers(1, 6)), replace=False).tolist()
        t0 = time.perf_counter()
        out = rec.recommend(recent, 10, reasons=True)
        dt = time.perf_counter() - t0
        if q >= 20:  # warm-up excluded
            times.append(dt)
            n_out.append(len(out))
    t = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(t, 50)), 3), "p99_ms": round(float(np.percentile(t, 99)), 3),
            "max_ms": round(float(t.max()), 3), "mean_results": float(np.mean(n_out))}


def bench_scale(n: int, *, kind: str, queries: int, users: int, seed: int = 0) -> dict:
    from recsys.index import IndexConfig, TrackIndex
    from recsys.rank import fit_hybrid
    from recsys.recommend import RankerConfig, RecommendConfig
    from recsys.rules import RulesConfig, mine_rules
    from recsys.sources import BLEND_SOURCES, Content, Interactions, SourceData
    from recsys.users import SimulationConfig, simulate_users

    res = {"tracks": n, "kind": kind}
    t0 = time.perf_counter()
    X = clustered_embeddings(n, seed=seed)
    res["gen_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    idx = TrackIndex(IndexConfig(kind=kind, seed=seed)).fit(X)
    res["index_build_s"] = round(time.perf_counter() - t0, 2)
    res["clusters"] = idx.n_clusters
    res["kind"] = idx.kind
    ids = np.array([f"t{i:07d}" for i in range(n)], dtype=object)
    cat = pd.DataFrame({"track_id": ids, "track_popularity": np.random.default_rng(seed).integers(0, 100, n)})
    t0 = time.perf_counter()
    h = simulate_users(cat, SimulationConfig(n_users=users, seed=seed), groups=idx.clusters)
    res["simulate_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    rules = mine_rules(h, RulesConfig())
    res["rules_s"] = round(time.perf_counter() - t0, 2)
    res["rules"] = len(rules)
    row_of = {t: i for i, t in enumerate(ids)}
    t0 = time.perf_counter()
    pop = np.bincount(h["track_id"].map(row_of).to_numpy(), minlength=n).astype(float)
    content = Content(embeddings=X, index=idx, clusters=idx.clusters, labels=ids,
                      meta={"artist": np.arange(n) // 8})
    data = SourceData(content, Interactions.from_histories(h, row_of, n), pop)
    # the blend sources only (rules, content, cluster, artist): scripts/bench_recommend.py times the ranker;
    # the rules source mines again here (setup time includes it; rules_s above is mining alone)
    rec = fit_hybrid(data, RecommendConfig(ranker=RankerConfig(mode="blend")), sources=BLEND_SOURCES)
    res["recommender_setup_s"] = round(time.perf_counter() - t0, 2)
    played = np.flatnonzero(pop > 0)
    del h, rules  # the engine keeps only the rule index; the tables would just load the garbage collector
    res.update(latency(rec, played, queries, seed))
    # recall of the ANN index against exact search on a sample (flat is exact by definition)
    if kind != "flat":
        import faiss

        q = X[np.random.default_rng(1).choice(n, 200, replace=False)]
        exact = faiss.IndexFlatIP(X.shape[1])
        exact.add(X)
        _, I_true = exact.search(q, 10)
        _, I = idx.search(q, 10)
        res["recall@10"] = round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, I_true)])), 3)
    res["peak_rss_mb"] = round(rss_mb())
    res["loadavg_1m"] = round(__import__("os").getloadavg()[0], 2)
    return res


def bench_pipeline(n: int, users: int, tmp: Path) -> dict:
    from recsys.engine import Engine, EngineConfig

    cfg = EngineConfig()
    cfg.genre_probs = False
    cat = fake_catalog(n)
    t0 = time.perf_counter()
    eng = Engine.build(cat, simulate_users=users, config=cfg, out=tmp / f"idx{n}")
    res = {"tracks": n, "users": users, "build_and_save_s": round(time.perf_counter() - t0, 2),
           **eng.summary()}
    t0 = time.perf_counter()
    eng = Engine.load(tmp / f"idx{n}")
    res["load_s"] = round(time.perf_counter() - t0, 2)
    played = np.flatnonzero(eng.popularity > 0)
    res.update(latency(eng.recommender, played, 500))
    rng = np.random.default_rng(0)
    t = []
    for _ in range(200):
        recent = eng.tracks.ids[rng.choice(played, 3, replace=False)].tolist()
        t0 = time.perf_counter()
        eng.recommend(recent, k=10)
        t.append(time.perf_counter() - t0)
    res["engine_recommend_p99_ms"] = round(float(np.percentile(np.array(t) * 1000, 99)), 3)
    res["peak_rss_mb"] = round(rss_mb())
    return res


def bench_query(index_dir: str, queries: int) -> dict:
    """Load a saved index and time Engine.recommend (ids in, Recommendation objects out)."""
    import os

    from recsys.engine import Engine

    t0 = time.perf_counter()
    eng = Engine.load(index_dir)
    res = {"index": index_dir, "tracks": eng.n_tracks, "rules": len(eng.rules),
           "kind": eng.summary()["index"], "load_s": round(time.perf_counter() - t0, 2)}
    played = np.flatnonzero(eng.popularity > 0)
    rng = np.random.default_rng(0)
    t = []
    for q in range(queries + 20):
        recent = eng.tracks.ids[rng.choice(played, int(rng.integers(1, 6)), replace=False)].tolist()
        t0 = time.perf_counter()
        eng.recommend(recent, k=10)
        if q >= 20:
            t.append(time.perf_counter() - t0)
    t = np.array(t) * 1000
    res.update({"queries": queries, "p50_ms": round(float(np.percentile(t, 50)), 3),
                "p99_ms": round(float(np.percentile(t, 99)), 3), "max_ms": round(float(t.max()), 3),
                "peak_rss_mb": round(rss_mb()), "loadavg_1m": round(os.getloadavg()[0], 2)})
    return res


def bench_rules(n_users: int, n_tracks: int, algorithm: str, transactions: str = "auto") -> dict:
    from recsys.rules import RulesConfig, mine_rules
    from recsys.users import SimulationConfig, simulate_users

    cat = pd.DataFrame({"track_id": [f"t{i:05d}" for i in range(n_tracks)],
                        "track_popularity": np.random.default_rng(0).integers(0, 100, n_tracks)})
    groups = np.arange(n_tracks) % 40
    t0 = time.perf_counter()
    h = simulate_users(cat, SimulationConfig(n_users=n_users, seed=0), groups=groups)
    sim_s = time.perf_counter() - t0
    before = rss_mb()
    t0 = time.perf_counter()
    rules = mine_rules(h, RulesConfig(algorithm=algorithm, transactions=transactions))
    dt = time.perf_counter() - t0
    return {"users": n_users, "tracks": n_tracks, "plays": len(h), "algorithm": algorithm,
            "transactions": transactions, "simulate_s": round(sim_s, 2), "mine_s": round(dt, 2),
            "rules": len(rules), "rules_next": int((rules["kind"] == "next").sum()),
            "peak_rss_mb": round(rss_mb()), "rss_before_mining_mb": round(before)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["scale", "pipeline", "rules", "query"])
    ap.add_argument("--index", help="query: a saved index directory")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--kind", default="auto", help="index kind for scale: auto, flat, hnsw, ivf")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--users", type=int, default=0,
                    help="scale/pipeline: users (default n/20, max 50k); rules: 50000")
    ap.add_argument("--tracks", type=int, default=2000)
    ap.add_argument("--algorithm", default="fpgrowth")
    ap.add_argument("--transactions", default="auto", help="rules: auto (sessions), user or window")
    ap.add_argument("--tmp", default="/tmp/recsys_bench")
    args = ap.parse_args(argv)
    if args.part == "query":
        print(json.dumps(bench_query(args.index, args.queries)), flush=True)
        return 0
    if args.part == "rules":
        print(json.dumps(bench_rules(args.users or 50000, args.tracks, args.algorithm, args.transactions)),
              flush=True)
        return 0
    for n in [int(s) for s in args.sizes.split(",")]:
        users = args.users or int(min(50000, max(500, n // 20)))
        if args.part == "scale":
            out = bench_scale(n, kind=args.kind, queries=args.queries, users=users)
        else:
            tmp = Path(args.tmp)
            tmp.mkdir(parents=True, exist_ok=True)
            out = bench_pipeline(n, users, tmp)
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
