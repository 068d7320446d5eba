"""Latency of Engine.playlist (50 tracks) beside Engine.recommend (k=50) and the ordering alone, one run.

Seeds are the first tracks of playlists from a histories table (held-out ones: they are new users), else
random catalogue tracks. Prints p50 / p99 in ms and the machine load. Usage:

    python scripts/bench_playlist.py --index out/mpd/idx --histories out/mpd/test.parquet [--queries 200]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--histories", help="seeds: the first --seed-tracks of each playlist")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--length", type=int, default=50)
    ap.add_argument("--seed-tracks", type=int, default=10)
    ap.add_argument("--arc", default="flat")
    args = ap.parse_args(argv)
    from recsys.engine import Engine
    from recsys.playlist import OrderConfig, camelot, order_tracks
    from recsys.users import read_histories

    eng = Engine.load(args.index)
    ids = eng.tracks.ids
    rng = np.random.default_rng(0)
    if args.histories:
        h = read_histories(args.histories)
        h = h[h["track_id"].isin(set(ids.tolist()))]
        seeds = [g["track_id"].tolist()[: args.seed_tracks] for _, g in h.groupby("user_id", sort=True)]
        seeds = [s for s in seeds if s][: args.queries]
    else:
        seeds = [rng.choice(ids, args.seed_tracks, replace=False).tolist() for _ in range(args.queries)]
    eng.playlist(seeds[0], args.length)  # warm-up (lazy imports, caches)
    t_pl, t_rec, t_ord = [], [], []
    f = eng.tracks.frame
    codes = camelot(f["key"].to_numpy(float), f["mode"].to_numpy(float))
    tempo, energy = f["tempo"].to_numpy(float), f["energy"].to_numpy(float)
    for s in seeds:
        t0 = time.perf_counter()
        pl = eng.playlist(s, args.length, arc=args.arc)
        t_pl.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        eng.recommend(s, args.length)
        t_rec.append(time.perf_counter() - t0)
        rows = [int(np.flatnonzero(ids == t.track_id)[0]) for t in pl]
        t0 = time.perf_counter()
        order_tracks(codes[rows], tempo[rows], energy[rows], arc=args.arc, config=OrderConfig())
        t_ord.append(time.perf_counter() - t0)

    def fmt(v):
        ms = np.asarray(v) * 1000
        p50, p99 = np.percentile(ms, [50, 99])
        return f"p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  max {ms.max():6.1f} ms"

    print(f"index {args.index}: {eng.n_tracks:,} tracks; {len(seeds)} queries, {args.length} tracks, "
          f"arc {args.arc}, default selection")
    print(f"Engine.playlist({args.length})   {fmt(t_pl)}")
    print(f"Engine.recommend(k={args.length}) {fmt(t_rec)}")
    print(f"ordering alone ({args.length})    {fmt(t_ord)}")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
