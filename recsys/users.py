"""Synthetic listening histories: reproducible users with tastes, sessions, popularity bias, repeats, skips.

Each user has a taste over track groups (parent genres, or the engine's clusters). A session starts
in a group drawn from the taste and moves between groups through a global transition matrix
re-weighted by the user's taste. Within a group, tracks are drawn with a Zipf bias over popularity
rank; with ``follow_prob`` the next track is the group's "next in order" (an album-like sequence the
rules can discover: this is what the generator plants). Repeats replay an earlier track; skipped
plays are kept with ``skipped=True``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError


@dataclass
class SimulationConfig:
    """Knobs of the synthetic-user generator."""

    n_users: int = 500
    seed: int = 0
    sessions_mean: float = 3.0  # sessions per user: 1 + Poisson(mean - 1)
    session_len_mean: float = 8.0  # plays per session: 2 + Poisson(mean - 2)
    taste_alpha: float = 0.3  # Dirichlet concentration of a user's taste (small = few favourite groups)
    stickiness: float = 0.7  # probability mass of staying in the same group per step
    zipf_a: float = 1.1  # popularity bias within a group
    follow_prob: float = 0.3  # next track = group's next-in-order track
    repeat_prob: float = 0.08
    skip_prob: float = 0.1


def _groups(catalog: pd.DataFrame, groups: np.ndarray | None, seed: int) -> np.ndarray:
    if groups is not None:
        g = np.asarray(groups)
        if len(g) != len(catalog):
            raise InputError(f"groups has {len(g)} entries for {len(catalog)} tracks")
        return pd.factorize(g)[0]
    if "parent_genre" in catalog.columns and catalog["parent_genre"].notna().mean() > 0.5:
        return pd.factorize(catalog["parent_genre"].fillna("unknown"))[0]
    from .blocks import tabular_stats
    from .index import default_k, kmeans

    X, _, _ = tabular_stats(catalog)
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    X /= np.linalg.norm(X, axis=1, keepdims=True) + 1e-9
    return kmeans(X, k=default_k(len(X)), seed=seed)[1]


def simulate_users(catalog: pd.DataFrame, config: SimulationConfig | None = None, *,
                   groups: np.ndarray | None = None, progress: bool = False) -> pd.DataFrame:
    """Histories table (user_id, position, track_id, session, skipped) for ``config.n_users`` users."""
    c = config or SimulationConfig()
    if c.n_users < 1:
        raise InputError("number of users must be at least 1")
    if catalog is None or len(catalog) == 0:
        raise InputError("cannot simulate users over an empty catalogue")
    rng = np.random.default_rng(c.seed)
    g = _groups(catalog, groups, c.seed)
    G = int(g.max()) + 1
    ids = catalog["track_id"].astype(str).to_numpy()
    pop = (pd.to_numeric(catalog["track_popularity"], errors="coerce").fillna(0).to_numpy()
           if "track_popularity" in catalog.columns else np.zeros(len(catalog)))
    members, probs, nxt = [], [], {}
    for k in range(G):
        m = np.flatnonzero(g == k)
        m = m[np.lexsort((rng.random(len(m)), -pop[m]))]  # popularity rank, random ties
        w = 1.0 / np.arange(1, len(m) + 1) ** c.zipf_a
        members.append(m)
        probs.append(np.cumsum(w / w.sum()))  # CDF: a draw is one searchsorted, not an O(n) rng.choice
        order = rng.permutation(m)  # the planted "album order" of the group
        for a, b in zip(order[:-1], order[1:]):
            nxt[int(a)] = int(b)
    # Global transitions: sticky diagonal + a few preferred neighbour groups.
    T = rng.dirichlet(np.full(G, 0.2), size=G) * (1 - c.stickiness) + np.eye(G) * c.stickiness
    rows = []
    it = range(c.n_users)
    if progress:
        from .progress import bar

        it = bar(it, desc="simulating users", unit="user")
    for u in it:
        taste = rng.dirichlet(np.full(G, c.taste_alpha))
        taste_cdf = np.cumsum(taste)
        tw = taste + 1e-3
        rows_cdf: dict[int, np.ndarray] = {}  # this user's transition rows, computed when first needed
        played: list[int] = []
        pos = 0
        n_sessions = 1 + rng.poisson(max(c.sessions_mean - 1, 0))
        for s in range(n_sessions):
            grp = min(int(np.searchsorted(taste_cdf, rng.random() * taste_cdf[-1])), G - 1)
            prev = -1
            for _ in range(2 + rng.poisson(max(c.session_len_mean - 2, 0))):
                r = rng.random()
                if played and r < c.repeat_prob:
                    t = played[rng.integers(len(played))]
                elif prev >= 0 and r < c.repeat_prob + c.follow_prob and prev in nxt:
                    t = nxt[prev]
                else:
                    if prev >= 0:
                        cdf = rows_cdf.get(grp)
                        if cdf is None:
                            cdf = rows_cdf[grp] = np.cumsum(T[grp] * tw)
                        grp = min(int(np.searchsorted(cdf, rng.random() * cdf[-1])), G - 1)
                    cdf = probs[grp]
                    t = int(members[grp][min(int(np.searchsorted(cdf, rng.random() * cdf[-1])),
                                             len(cdf) - 1)])
                grp = int(g[t])
                skipped = bool(rng.random() < c.skip_prob * (2.0 if taste[grp] < 1.0 / G else 0.5))
                rows.append((f"u{u:06d}", pos, ids[t], s, skipped))
                played.append(t)
                prev = t
                pos += 1
    return pd.DataFrame(rows, columns=["user_id", "position", "track_id", "session", "skipped"])


def read_histories(source, *, where: str | None = None) -> pd.DataFrame:
    """Read a histories table (user_id, position, track_id [, session, skipped]).

    The result is sorted by user and position.
    """
    from .errors import SchemaError
    from .io import read_table

    where = where or ("histories" if isinstance(source, pd.DataFrame) else str(source))
    df = source.copy() if isinstance(source, pd.DataFrame) else read_table(source)
    if len(df) == 0:
        raise InputError(f"{where}: histories are empty")
    missing = [c for c in ("user_id", "track_id") if c not in df.columns]
    if missing:
        raise SchemaError(f"{where}: missing column(s) {', '.join(missing)} "
                          "(need user_id, position, track_id)")
    df = df[df["user_id"].notna() & df["track_id"].notna()].copy()
    if len(df) == 0:
        raise InputError(f"{where}: histories are empty (no rows with user_id and track_id)")
    df["user_id"] = df["user_id"].astype(str)
    df["track_id"] = df["track_id"].astype(str).str.strip()
    if "position" not in df.columns:
        df["position"] = df.groupby("user_id", sort=False).cumcount()
    pos = pd.to_numeric(df["position"], errors="coerce")
    if pos.isna().any():
        raise SchemaError(f"{where}: column position must be numeric")
    df["position"] = pos
    if "skipped" in df.columns:
        df["skipped"] = df["skipped"].fillna(False).astype(bool)
    return df.sort_values(["user_id", "position"], kind="stable").reset_index(drop=True)
