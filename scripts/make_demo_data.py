"""Build data/spotify_demo.csv.gz: a small artist-grouped subset of the TidyTuesday table (CC0).

Whole artists are sampled per genre, so an artist-grouped split of the demo data stays honest.
Run from the project root:  python scripts/make_demo_data.py [--rows-per-genre 400]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

SRC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "spotify" / "spotify_songs_dev.csv.gz"
DST = Path(__file__).resolve().parents[1] / "data" / "spotify_demo.csv.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--src", type=Path, default=SRC)
    ap.add_argument("--out", type=Path, default=DST)
    ap.add_argument("--rows-per-genre", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    df = pd.read_csv(args.src)
    rng = np.random.default_rng(args.seed)
    # Sample artists (not rows); keep every row of a chosen artist so duplicates/multi-labels survive.
    artist_genre = df.groupby("track_artist")["playlist_genre"].agg(lambda s: s.mode().iloc[0])
    chosen: list[str] = []
    for genre, artists in artist_genre.groupby(artist_genre):
        order = rng.permutation(artists.index.to_numpy())
        n = 0
        for a in order:
            k = int((df["track_artist"] == a).sum())
            if n + k > args.rows_per_genre * 1.1:
                continue
            chosen.append(a)
            n += k
            if n >= args.rows_per_genre:
                break
    out = df[df["track_artist"].isin(chosen)].reset_index(drop=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, index=False, compression="gzip")
    print(f"{len(out)} rows, {out['track_id'].nunique()} tracks, {out['track_artist'].nunique()} artists "
          f"-> {args.out}")
    print(out["playlist_genre"].value_counts().to_string())


if __name__ == "__main__":
    main()
