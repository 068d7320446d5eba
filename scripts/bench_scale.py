"""Scale-out benchmarks (docs/scale.md): rule mining mlxtend vs Spark local, extraction serial vs
--jobs 2 vs Dask.

    OMP_WAIT_POLICY=PASSIVE python scripts/bench_scale.py rules [--users 2000 50000] [--tracks 2000]
    OMP_WAIT_POLICY=PASSIVE python scripts/bench_scale.py extract [--synthetic 200] [--seconds 30]

rules: synthetic users (recsys.users.simulate_users, 40 taste groups) over T tracks; mine_rules with the
default settings (session transactions, auto min_support, next-track rules) once with mlxtend and once
with Spark (local[*]); the Spark session start-up is timed on its own. Checks the two rules tables are
equal (same rows, support, confidence, lift, count).
extract: spectral+audiostats over (a) the bundled clips in data/audio and (b) N synthetic songs (FLAC),
cold cache, with --jobs 1, --jobs 2, --scheduler local (2 Dask workers, cluster start-up included) and
--scheduler tcp:// of a 2-worker cluster started (and warmed up) beforehand,
one run each, after a one-file warm-up (imports); checks the blocks agree. Each result line carries the
1-minute load average (shared box); rules lines also the CPU seconds of the process tree (with the JVM).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "audio"


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its children so far (the Spark JVM is a child)."""
    import psutil

    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    own = me.cpu_times()
    total = own.children_user + own.children_system  # children already ended and reaped
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _keyed(rules: pd.DataFrame) -> pd.DataFrame:
    r = rules.copy()
    r.index = r["kind"] + ":" + r["antecedents"].map("|".join) + ">" + r["consequents"].map(lambda c: c[0])
    return r.sort_index()


def bench_rules(users: list[int], tracks: int) -> list[dict]:
    from recsys.rules import RulesConfig, mine_rules
    from recsys.rules_spark import spark_session
    from recsys.users import SimulationConfig, simulate_users

    cat = pd.DataFrame({"track_id": [f"t{i:05d}" for i in range(tracks)],
                        "track_popularity": np.random.default_rng(0).integers(0, 100, tracks)})
    load0 = _load()
    t0 = time.perf_counter()
    spark = spark_session()
    session_s = time.perf_counter() - t0
    print(json.dumps({"spark_session_s": round(session_s, 1), "master": spark.sparkContext.master,
                      "load_1m": load0}), flush=True)
    out = []
    for n in users:
        h = simulate_users(cat, SimulationConfig(n_users=n, seed=0), groups=np.arange(tracks) % 40)
        res = {"users": n, "tracks": tracks, "plays": len(h)}
        tables = {}
        for engine in ("mlxtend", "spark"):
            res[f"load_before_{engine}"] = _load()
            c0, t0 = _cpu_s(), time.perf_counter()
            tables[engine] = mine_rules(h, RulesConfig(engine=engine))
            res[f"{engine}_s"] = round(time.perf_counter() - t0, 2)
            res[f"{engine}_cpu_s"] = round(_cpu_s() - c0, 1)
            res[f"{engine}_rules"] = len(tables[engine])
        a, b = _keyed(tables["mlxtend"]), _keyed(tables["spark"])
        res["same_rules"] = bool(a.index.equals(b.index)
                                 and all(np.allclose(a[c], b[c], rtol=1e-12, atol=0)
                                         for c in ("support", "confidence", "lift"))
                                 and (a["count"].to_numpy() == b["count"].to_numpy()).all())
        res["assoc_rules"] = int((a["kind"] == "assoc").sum())
        print(json.dumps(res), flush=True)
        out.append(res)
    return out


def _synthetic(folder: Path, n: int, seconds: float) -> Path:
    import soundfile as sf

    from recsys.testing.audio import GENRES, synth_song

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        f = folder / f"song_{i:03d}.flac"
        if not f.exists():
            sf.write(f, synth_song(GENRES[i % 3], seconds=seconds, seed=100 + i), 22050)
    return folder


def bench_extract(synthetic: int, seconds: float, work: Path) -> list[dict]:
    from pipelines.extract_features import ExtractConfig, discover, run

    sets = [("bundled clips (data/audio)", DATA)]
    if synthetic:
        sets.append((f"{synthetic} synthetic {seconds:g}-s songs (FLAC)",
                     _synthetic(work / "synth", synthetic, seconds)))
    out = []
    # warm-up outside the timings: imports (librosa, scipy, soxr) in this process, paid once by any CLI run
    first = discover(DATA)[0]
    warm = work / "warm"
    shutil.rmtree(warm, ignore_errors=True)
    (warm / "in").mkdir(parents=True)
    shutil.copy(first, warm / "in" / first.name)
    run(warm / "in", warm / "out", ExtractConfig(blocks=("spectral", "audiostats")), progress=False)
    # a running 2-worker cluster (like `dask scheduler` + `dask worker`), warmed up by the same one-file run
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    for i in range(2):
        run(warm / "in", warm / f"out_dask{i}",
            ExtractConfig(blocks=("spectral", "audiostats"), scheduler=cluster.scheduler_address),
            progress=False)
    blocks = ("spectral", "audiostats")
    modes = (("serial", ExtractConfig(blocks=blocks)),
             ("--jobs 2", ExtractConfig(blocks=blocks, jobs=2)),
             ("--scheduler local (new 2-worker LocalCluster)",
              ExtractConfig(blocks=blocks, jobs=2, scheduler="local")),
             ("--scheduler tcp:// (running 2-worker cluster)",
              ExtractConfig(blocks=blocks, scheduler=cluster.scheduler_address)))
    for label, audio in sets:
        n = len(discover(audio))
        ref = None
        for mode, cfg in modes:
            dest = work / f"out_{len(out)}"
            shutil.rmtree(dest, ignore_errors=True)
            load = _load()
            t0 = time.perf_counter()
            s = run(audio, dest, cfg, progress=False)
            dt = time.perf_counter() - t0
            table = s.tables["spectral"]
            same = None
            if ref is None:
                ref = table
            else:
                try:
                    pd.testing.assert_frame_equal(ref, table, check_exact=False, rtol=1e-4, atol=1e-5)
                    same = True
                except AssertionError:
                    same = False
            res = {"set": label, "files": n, "mode": mode, "wall_s": round(dt, 2),
                   "tracks_per_s": round(n / dt, 2), "computed": s.computed, "load_before": load,
                   "load_after": _load(), "same_as_serial": same}
            print(json.dumps(res), flush=True)
            out.append(res)
    cluster.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["rules", "extract"])
    ap.add_argument("--users", type=int, nargs="+", default=[2000, 50000])
    ap.add_argument("--tracks", type=int, default=2000)
    ap.add_argument("--synthetic", type=int, default=200,
                    help="extract: synthetic songs (0 = bundled clips only)")
    ap.add_argument("--seconds", type=float, default=30.0, help="extract: length of each synthetic song")
    ap.add_argument("--work", type=Path, default=None, help="extract: scratch dir (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.what == "rules":
        results = bench_rules(args.users, args.tracks)
    else:
        work = args.work or Path(tempfile.mkdtemp(prefix="bench_scale_"))
        try:
            results = bench_extract(args.synthetic, args.seconds, work)
        finally:
            if args.work is None:
                shutil.rmtree(work, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
