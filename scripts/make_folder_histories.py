#!/usr/bin/env python
"""Synthetic listening histories whose users follow the GENRE of labelled audio, not the index's clusters.

    python scripts/make_folder_histories.py out/synth --out out/synth_hist.parquet --users 300 --seed 0

Reads ``AUDIO_DIR/labels.csv`` (``file,genre``, as written by make_synth_audio.py) or, without it,
takes each file's parent folder as its genre. Track ids are file stems, the default of
``recsys features extract``. The simulator is recsys's own (``recsys.users.simulate_users``) with the
genres as its groups, so an evaluation on these histories is not circular with the clusters an
index builds from its embeddings.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pandas as pd

from recsys.io import write_table
from recsys.users import SimulationConfig, simulate_users

AUDIO_EXT = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aiff", ".aif"}


def labelled_tracks(audio_dir: Path) -> pd.DataFrame:
    """track_id (file stem) and genre for every labelled audio file under ``audio_dir``."""
    labels = audio_dir / "labels.csv"
    if labels.exists():
        t = pd.read_csv(labels)
        return pd.DataFrame({"track_id": [Path(f).stem for f in t["file"]], "genre": t["genre"].astype(str)})
    files = sorted(p for p in audio_dir.rglob("*") if p.suffix.lower() in AUDIO_EXT)
    files = [p for p in files if p.parent != audio_dir]
    if not files:
        raise SystemExit(f"{audio_dir}: no labels.csv and no audio files inside genre folders")
    return pd.DataFrame({"track_id": [p.stem for p in files], "genre": [p.parent.name for p in files]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("audio_dir", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tracks = labelled_tracks(args.audio_dir)
    if tracks["track_id"].duplicated().any():
        raise SystemExit("duplicate file stems: track ids would collide")
    cfg = dataclasses.replace(SimulationConfig(), n_users=args.users, seed=args.seed)
    h = simulate_users(tracks[["track_id"]], cfg, groups=tracks["genre"].to_numpy())
    write_table(h, args.out)
    print(f"{args.out}: {args.users} users, {len(h)} plays over {h['track_id'].nunique()} tracks, "
          f"grouped by {tracks['genre'].nunique()} genres ({', '.join(sorted(tracks['genre'].unique()))}), "
          f"seed {args.seed}")


if __name__ == "__main__":
    main()
