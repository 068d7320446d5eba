"""Data prep: split a catalogue's rows by artist into train and held-out files (no artist in both).

The held-out rows are kept as they are (duplicates of a track under several genres included), as
``recsys genres predict`` reads them, so its printed accuracy is a held-out-artists figure:

    python scripts/split_artists.py ../shared/data/spotify/spotify_songs_dev.csv.gz --out out/artists
    recsys genres train --catalog out/artists/train.csv.gz --out out/artists/model --folds 2
    recsys genres predict --model out/artists/model --catalog out/artists/holdout.csv.gz \
        --out out/artists/pred.csv [--no-artist-pooling]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("catalog")
    ap.add_argument("--out", required=True, help="directory for train.csv.gz and holdout.csv.gz")
    ap.add_argument("--share", type=float, default=0.2, help="share of the artists held out")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    from recsys.io import write_table

    df = pd.read_csv(args.catalog)
    if "track_artist" not in df.columns:
        raise SystemExit(f"error: {args.catalog}: no track_artist column to split by")
    artist = df["track_artist"].fillna("").astype(str).str.strip().str.lower()
    names = np.array(sorted(set(artist)))
    rng = np.random.default_rng(args.seed)
    held = set(rng.choice(names, size=int(args.share * len(names)), replace=False))
    mask = artist.isin(held).to_numpy()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_table(df[~mask], out / "train.csv.gz", output=True, force=True)
    write_table(df[mask], out / "holdout.csv.gz", output=True, force=True)
    print(f"{len(df)} rows, {len(names)} artists -> train {int((~mask).sum())} rows, "
          f"holdout {int(mask.sum())} rows of {len(held)} artists in {out}")


if __name__ == "__main__":
    main()
