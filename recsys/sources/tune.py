"""Sources that tune themselves: a small grid per source (``Source.grid``), scored on held-out users.

The training users are split by user (seeded): the sources are fitted on the plays of the others and
scored by HitRate@10 (MRR@10 breaks ties) on next-track queries of the held-out users (the last
play and a few earlier cut points, each with every play before it as context). One coordinate pass
over each source's grid, within a time budget; the chosen values go into the returned config.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from ..recommend import RecommendConfig
from .base import Interactions, SourceData, make_context, with_settings

log = logging.getLogger(__name__)


def pick_users(inter: Interactions, share: float, rng: np.random.Generator, *,
               avoid: np.ndarray | None = None, min_plays: int = 2) -> np.ndarray:
    """A seeded ``share`` of the users with ``min_plays``+ plays (never one of ``avoid``), sorted."""
    lens = np.diff(inter.starts())
    users = np.flatnonzero(lens >= min_plays)
    if avoid is not None and len(avoid):
        users = np.setdiff1d(users, avoid)
    n = int(round(share * len(users)))
    return np.sort(rng.choice(users, n, replace=False)) if n else np.zeros(0, np.int64)


def without_users(inter: Interactions, users: np.ndarray) -> Interactions:
    """The plays of every user but ``users`` (same codes and catalogue)."""
    return inter.subset(~np.isin(inter.users, users))


def cut_queries(inter: Interactions, users: np.ndarray, rng: np.random.Generator, *, per_user: int = 3,
                max_context: int = 100) -> list[tuple[int, np.ndarray, int, bool]]:
    """[(user, context rows, target, is last)]: per user its last play and up to ``per_user - 1`` random
    earlier cut points, each with the plays before it as context (targets in their context skipped)."""
    starts = inter.starts()
    out = []
    for u in np.asarray(users).tolist():
        s, n = int(starts[u]), int(starts[u + 1] - starts[u])
        if n < 2:
            continue
        cuts = {n - 1}
        if per_user > 1 and n > 2:
            cuts |= set(rng.choice(np.arange(1, n - 1), min(per_user - 1, n - 2), replace=False).tolist())
        for j in sorted(cuts):
            ctx = inter.items[s:s + j][-max_context:]
            t = int(inter.items[s + j])
            if t not in set(ctx.tolist()):
                out.append((u, ctx, t, j == n - 1))
    return out


def next_track_queries(inter: Interactions, users: np.ndarray, rng: np.random.Generator, *,
                       per_user: int = 3, max_context: int = 100) -> list[tuple[np.ndarray, int]]:
    """(context rows, target row) pairs of :func:`cut_queries` (for tuning a source alone)."""
    return [(ctx, t) for _, ctx, t, _ in cut_queries(inter, users, rng, per_user=per_user,
                                                      max_context=max_context)]


def hit_mrr(src, queries: Sequence[tuple[np.ndarray, int]], config: RecommendConfig, *,
            k: int = 10) -> tuple[float, float]:
    """HitRate@k and MRR@k of one fitted source on (context, target) queries."""
    hits = rr = 0.0
    for seq, t in queries:
        rows, _ = src.candidates(make_context(seq, config), k)
        pos = np.flatnonzero(rows == t)
        if len(pos):
            hits += 1
            rr += 1.0 / (pos[0] + 1)
    n = max(len(queries), 1)
    return float(hits / n), float(rr / n)


def tune_source(name: str, fit: SourceData, queries, config: RecommendConfig, *,
                deadline: float) -> tuple[RecommendConfig, dict]:
    """One coordinate pass over the source's grid; (config with the best values, report)."""
    from . import make_source

    first = make_source(name, config)
    src_cls, best_cfg, best_set = type(first), config, first.settings
    t0 = time.perf_counter()
    best = hit_mrr(first.fit(fit), queries, config)
    tried = 1
    for field, values in src_cls.grid.items():
        for v in values:
            if v == getattr(best_set, field):
                continue
            if time.perf_counter() > deadline:
                break
            cfg = with_settings(best_cfg, name, **{field: v})
            src = make_source(name, cfg)
            got = hit_mrr(src.fit(fit), queries, cfg)
            tried += 1
            if got > best:
                best, best_cfg, best_set = got, cfg, src.settings
    chosen = {f: getattr(best_set, f) for f in src_cls.grid}
    report = {**chosen, "hr@10": round(best[0], 4), "mrr@10": round(best[1], 4), "tried": tried,
              "seconds": round(time.perf_counter() - t0, 2)}
    log.info("tuned %s: %s", name, report)
    return best_cfg, report


def tune_sources(data: SourceData, config: RecommendConfig, names: Sequence[str], *,
                 val_users: np.ndarray, seed: int = 0) -> tuple[RecommendConfig, dict]:
    """Tune every named source that has a grid on ``val_users`` (held out from fitting), within
    ``config.tune_seconds`` (shared, in turn); returns (config with the chosen values, per-source report)."""
    inter = data.interactions
    rng = np.random.default_rng(seed)
    queries = next_track_queries(inter, val_users, rng, max_context=config.max_context)
    fit = SourceData(data.content, without_users(inter, val_users))
    from . import SOURCES

    names = [n for n in names if SOURCES[n].grid]
    out, report = config, {}
    start = time.perf_counter()
    for i, name in enumerate(names):
        # each source gets an equal share of what is left of the budget
        left = config.tune_seconds - (time.perf_counter() - start)
        deadline = time.perf_counter() + max(left, 0.0) / (len(names) - i)
        out, report[name] = tune_source(name, fit, queries, out, deadline=deadline)
    return out, {"validation_users": int(len(val_users)), "queries": len(queries), "sources": report}
