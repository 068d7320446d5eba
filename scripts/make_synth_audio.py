#!/usr/bin/env python
"""Write a seeded synthetic labelled audio set (3 genres differing in rhythm and timbre) for demos.

    python scripts/make_synth_audio.py out/synth_audio --per-genre 10 --seconds 12 [--layout folders]

Produces WAV files plus ``labels.csv`` (``file,genre``), ready for
``recsys cnn train --audio-dir out/synth_audio --labels out/synth_audio/labels.csv --out MODEL``.
The generator lives in recsys/testing/audio.py (the tests use the same songs).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from recsys.testing.audio import GENRES, write_labelled_set


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--per-genre", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layout", choices=("csv", "folders"), default="csv")
    args = ap.parse_args()
    where = write_labelled_set(args.out, per_genre=args.per_genre, seconds=args.seconds, seed=args.seed,
                               layout=args.layout)
    print(f"{args.per_genre * len(GENRES)} songs ({', '.join(GENRES)}) -> {where}")


if __name__ == "__main__":
    main()
