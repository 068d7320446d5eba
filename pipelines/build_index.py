"""Batch stage: catalogue (+ audio feature blocks) (+ histories or synthetic users) -> index directory.

Reads its inputs, builds embeddings, the FAISS index, clusters and rules, and writes the index
directory atomically (an interrupted run leaves the previous index untouched). The heavy work is
:meth:`recsys.engine.Engine.build`; this stage adds config loading, progress and a summary.

Run it as ``recsys build-index --catalog data/spotify_demo.csv.gz --simulate-users 500 --out out/idx``.
"""
from __future__ import annotations

import os
from typing import Sequence


def load_engine_config(path: str | os.PathLike | None):
    """EngineConfig from the ``[engine]`` table of a TOML file (defaults without a file)."""
    from recsys.config import load_section
    from recsys.engine import EngineConfig

    return load_section(path, "engine", EngineConfig)


def run(*, catalog=None, out, histories=None, simulate_users: int | None = None, features=None,
        blocks: Sequence[str] | None = None, genre_model=None, config=None, seed: int | None = None,
        no_genre_probs: bool = False, progress: bool = True, cache_dir=None, force: bool = False,
        on_conflict: str = "error", stats=None):
    """Build and save an index; returns the Engine."""
    from recsys.engine import Engine
    from recsys.errors import InputError

    if histories is not None and simulate_users:
        raise InputError("give either --histories or --simulate-users, not both")
    cfg = load_engine_config(config) if config is None or isinstance(config, (str, os.PathLike)) else config
    if no_genre_probs:
        cfg.genre_probs = False
    return Engine.build(catalog, histories=histories, simulate_users=simulate_users, out=out, blocks=blocks,
                        features=features, genre_model=genre_model, config=cfg, seed=seed, progress=progress,
                        cache_dir=cache_dir, force=force, on_conflict=on_conflict, stats=stats)


def format_summary(engine, out) -> str:
    s = engine.summary()
    lines = [f"index written to {out}",
             f"  tracks {s['tracks']:,}  dim {s['dim']}  blocks {','.join(s['blocks'])}  "
             f"genre probabilities {'yes' if s['genre_probs'] else 'no'}",
             f"  faiss {s['index']}  clusters {s['clusters']}",
             f"  histories: {s['users']:,} users, {s['plays']:,} plays"
             + (f" ({s['unknown_plays']:,} plays of unknown tracks ignored)"
                if s.get("unknown_plays") else ""),
             f"  rules {s['rules']:,} ({s['rules_next']:,} next-track)"]
    if s.get("recommender"):
        from recsys.rank import describe

        lines.append(f"  recommender: {describe(s['recommender'])}")
        lines.append(f"  candidate sources: {', '.join(s.get('sources', []))}")
    presence = engine.block_presence
    if presence and len(presence) > 1:
        lines.append("  block coverage: "
                     + ", ".join(f"{k} {v:,}/{s['tracks']:,}" for k, v in presence.items()))
    stats = engine.stats
    if stats.get("audio_only_tracks"):
        lines.append(f"  audio-only tracks added: {stats['audio_only_tracks']:,}")
    if stats.get("audio_files_left_out"):
        lines.append(f"  audio files left out (every block failed; see the features dir's failures.csv): "
                     f"{stats['audio_files_left_out']:,}")
    if stats.get("stats_filled"):
        lines.append(f"  statistics filled from --stats: {stats['stats_filled']:,} tracks")
    if stats.get("build_seconds") is not None:
        lines.append(f"  built in {stats['build_seconds']:.1f} s")
    return "\n".join(lines)

