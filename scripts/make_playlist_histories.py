"""Turn real playlists into a histories table: user_id = playlist_id, position = row order in the table.

The TidyTuesday "Spotify songs" table lists each playlist's tracks as consecutive rows; we treat
each playlist as one listener and its row order as play order. Usage:

    python scripts/make_playlist_histories.py [TABLE] --out out/playlists.parquet
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "spotify" / "spotify_songs_dev.csv.gz"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table", nargs="?", default=str(DEFAULT))
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    from recsys.errors import RecsysError
    from recsys.evaluate import playlist_histories
    from recsys.io import write_table

    try:
        h = playlist_histories(args.table)
    except RecsysError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_table(h, args.out)
    print(f"{args.out}: {h['user_id'].nunique()} playlists, {len(h)} plays, {h['track_id'].nunique()} tracks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
