"""Small synthetic catalogues and histories for the engine tests (fast, seeded)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.schema import STATS

GENRES = ["pop", "rock", "rap", "edm"]


def make_catalog(n: int = 240, *, seed: int = 0, n_artists: int = 60) -> pd.DataFrame:
    """A TidyTuesday-shaped table: 12 stats drawn around a per-genre centre, artists nested in genres."""
    rng = np.random.default_rng(seed)
    genre_idx = np.arange(n) % len(GENRES)
    centres = rng.random((len(GENRES), 12))
    base = np.clip(centres[genre_idx] + rng.normal(0, 0.08, (n, 12)), 0.01, 0.99)
    df = pd.DataFrame({"track_id": [f"t{i:04d}" for i in range(n)],
                       "track_name": [f"Song {i}" for i in range(n)],
                       "track_artist": [f"artist{(i // len(GENRES)) % (n_artists // len(GENRES))}_{GENRES[g]}"
                                        for i, g in enumerate(genre_idx)],
                       "track_popularity": rng.integers(0, 100, n),
                       "playlist_genre": [GENRES[g] for g in genre_idx]})
    for j, c in enumerate(STATS):
        v = base[:, j]
        if c == "key":
            v = np.floor(v * 12).clip(0, 11)
        elif c == "mode":
            v = (v > 0.5).astype(float)
        elif c == "loudness":
            v = -30 + 30 * v
        elif c == "tempo":
            v = 60 + 120 * v
        elif c == "duration_ms":
            v = 120000 + 180000 * v
        df[c] = v
    return df


def planted_histories(catalog: pd.DataFrame, *, n_users: int = 120, seed: int = 0,
                      cold: int = 40) -> pd.DataFrame:
    """Users who play A -> B -> C chains inside one genre; the last ``cold`` tracks are never played."""
    rng = np.random.default_rng(seed)
    ids = catalog["track_id"].tolist()[: len(catalog) - cold]
    chains = [ids[i:i + 3] for i in range(0, len(ids) - 3, 3)]
    rows = []
    for u in range(n_users):
        pos = 0
        for _ in range(4):
            ch = chains[rng.integers(len(chains))]
            for t in ch:
                rows.append((f"u{u}", pos, t))
                pos += 1
    return pd.DataFrame(rows, columns=["user_id", "position", "track_id"])


def fast_config(**overrides):
    """EngineConfig with a tiny genre model (or none) and a PCA map (no numba compile) for fast tests."""
    from recsys.engine import EngineConfig

    cfg = EngineConfig()
    cfg.genre_params = {"n_estimators": 15, "num_leaves": 7}
    cfg.genre_folds = 2
    cfg.projection.method = "pca"
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def planted_engine(out):
    """(Engine, histories): an index over ``make_catalog(240)`` and 120 users' planted chains with the learned
    ranker (min_users 50) and no guard (the chains make every source near perfect: it would serve one)."""
    from recsys.engine import Engine

    cat = make_catalog(240)
    hist = planted_histories(cat, n_users=120)
    cfg = fast_config(genre_probs=False)
    cfg.recommend.ranker.min_users = 50
    cfg.recommend.ranker.guard = False
    return Engine.build(cat, histories=hist, config=cfg, seed=0, out=out), hist
