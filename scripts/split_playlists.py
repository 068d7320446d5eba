"""Split real playlists by playlist into train / validation / test histories for continuation evaluation.

Test and validation playlists have at least ``--min-tracks`` catalogue tracks and are never in the
training histories (build the index on ``train``). Usage (MPD dev playlists: research use only, write
the split outside ``data/`` and the repository):

    python scripts/split_playlists.py /work/shared/data/playlists/mpd_dev_playlists.tsv.gz \
        --catalog /work/shared/data/spotify/spotify_songs_dev.csv.gz --out out/mpd
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("histories", help="histories table: user_id (playlist), position, track_id")
    ap.add_argument("--catalog", help="keep only plays of tracks in this catalogue")
    ap.add_argument("--out", required=True, help="directory for train/valid/test.parquet")
    ap.add_argument("--min-tracks", type=int, default=15)
    ap.add_argument("--test", type=float, default=0.2, help="share of eligible playlists held out for test")
    ap.add_argument("--valid", type=float, default=0.1, help="share held out for validation")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from recsys.continuation import split_playlists
    from recsys.errors import RecsysError
    from recsys.io import read_table, write_table
    from recsys.users import read_histories

    try:
        h = read_histories(args.histories)
        if args.catalog:
            ids = set(read_table(args.catalog)["track_id"].astype(str).str.strip())
            h = h[h["track_id"].isin(ids)]
        parts = split_playlists(
            h, min_tracks=args.min_tracks, test=args.test, valid=args.valid, seed=args.seed
        )
    except RecsysError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in parts.items():
        write_table(part, out / f"{name}.parquet")
        print(f"{out / name}.parquet: {part['user_id'].nunique():,} playlists, {len(part):,} plays")
    return 0


if __name__ == "__main__":
    sys.exit(main())
