"""Playlist continuation evaluation: seed = the first tracks of a held-out playlist, truth = the rest.

The RecSys Challenge 2018 metrics (R-precision, recall@N, NDCG@N) plus two transition measures of
the returned order (share of key-compatible adjacent pairs, median folded tempo step). Held-out
playlists are never seen by any source or the ranker: build the index on the training playlists
(:func:`split_playlists`) and evaluate on the others. Every method returns ``n`` tracks in one run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError

log = logging.getLogger(__name__)


def split_playlists(
    histories: pd.DataFrame, *, min_tracks: int = 15, test: float = 0.2, valid: float = 0.1, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """{"train", "valid", "test"} histories split by playlist; valid/test playlists have >= min_tracks
    distinct tracks, everything else trains."""
    if not (0 <= test < 1 and 0 <= valid < 1 and test + valid < 1):
        raise InputError(f"test ({test}) and valid ({valid}) shares must be in [0, 1) and sum below 1")
    size = histories.groupby("user_id", sort=False)["track_id"].nunique()
    eligible = np.sort(size.index[size >= min_tracks].astype(str).to_numpy())
    if len(eligible) < 2:
        raise InputError(f"only {len(eligible)} playlist(s) have {min_tracks}+ tracks: nothing to hold out")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(eligible)
    n_test, n_valid = int(round(test * len(perm))), int(round(valid * len(perm)))
    test_ids, valid_ids = set(perm[:n_test]), set(perm[n_test : n_test + n_valid])
    u = histories["user_id"].astype(str)
    return {
        "train": histories[~u.isin(test_ids | valid_ids)].reset_index(drop=True),
        "valid": histories[u.isin(valid_ids)].reset_index(drop=True),
        "test": histories[u.isin(test_ids)].reset_index(drop=True),
    }


# ---------------------------------------------------------------------------------------------- metrics
def r_precision(ranked: Sequence[int], truth: set[int]) -> float:
    """Share of the truth among the first |truth| tracks (RecSys Challenge 2018, track level)."""
    if not truth:
        return 0.0
    return len(set(list(ranked)[: len(truth)]) & truth) / len(truth)


def recall_at(ranked: Sequence[int], truth: set[int], n: int) -> float:
    """Share of the truth among the first n tracks."""
    return len(set(list(ranked)[:n]) & truth) / len(truth) if truth else 0.0


def ndcg_at(ranked: Sequence[int], truth: set[int], n: int) -> float:
    """Binary-relevance NDCG over the first n tracks (ideal: min(|truth|, n) hits first)."""
    if not truth:
        return 0.0
    dcg = sum(1.0 / np.log2(i + 2) for i, r in enumerate(list(ranked)[:n]) if r in truth)
    idcg = sum(1.0 / np.log2(i + 2) for i in range(min(len(truth), n)))
    return dcg / idcg


@dataclass
class Query:
    """One held-out playlist: its seed rows (in order) and the distinct rows that follow."""

    playlist: str
    seed: list[int]
    truth: set[int]


def continuation_queries(
    histories,
    row_of: dict[str, int],
    *,
    n_seed: int = 10,
    min_tracks: int = 15,
    max_playlists: int | None = None,
    seed: int = 0,
) -> tuple[list[Query], dict]:
    """Playlists with ``min_tracks``+ distinct catalogue tracks: seed = the first ``n_seed``,
    truth = the rest."""
    from .users import read_histories

    h = read_histories(histories)
    known = h["track_id"].isin(row_of)
    n_unknown = int((~known).sum())
    h = h[known]
    out = []
    for pid, g in h.groupby("user_id", sort=True):
        rows = list(dict.fromkeys(g["track_id"].map(row_of).astype(int).tolist()))
        if len(rows) < min_tracks:
            continue
        s = rows[:n_seed]
        out.append(Query(str(pid), s, set(rows[n_seed:]) - set(s)))
    if not out:
        raise InputError(f"no playlist has {min_tracks}+ tracks in the index: nothing to continue")
    if max_playlists and len(out) > max_playlists:
        pick = np.sort(np.random.default_rng(seed).choice(len(out), max_playlists, replace=False))
        out = [out[i] for i in pick.tolist()]
    return out, {
        "playlists": len(out),
        "unknown_plays": n_unknown,
        "median_truth": float(np.median([len(q.truth) for q in out])),
    }


Method = Callable[[list[int], int], Sequence[int]]


def score_lists(
    lists: Sequence[Sequence[int]], queries: Sequence[Query], *, n: int, codes: np.ndarray, tempos: np.ndarray
) -> dict[str, float]:
    """Mean R-precision, recall@n, NDCG@n, key-compatible adjacent pairs and median tempo step."""
    from .playlist import transition_stats

    rp, rc, nd, kc, ts = [], [], [], [], []
    for lst, q in zip(lists, queries):
        lst = [int(x) for x in list(lst)[:n]]
        rp.append(r_precision(lst, q.truth))
        rc.append(recall_at(lst, q.truth, n))
        nd.append(ndcg_at(lst, q.truth, n))
        if len(lst) >= 2:
            st = transition_stats(codes[lst], tempos[lst])
            kc.append(st["key_compatible"])
            ts.append(st["tempo_step"])
    return {
        "r_precision": float(np.mean(rp)),
        f"recall@{n}": float(np.mean(rc)),
        f"ndcg@{n}": float(np.mean(nd)),
        "key_compatible": float(np.nanmean(kc)) if kc else float("nan"),
        "tempo_step": float(np.nanmedian(ts)) if ts else float("nan"),
        "returned": float(np.mean([min(len(x), n) for x in lists])),
    }


def run(
    methods: dict[str, Callable[[list[int], int], dict[str, Sequence[int]]]],
    queries: Sequence[Query],
    *,
    n: int,
    codes: np.ndarray,
    tempos: np.ndarray,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict]:
    """Every method on every query (a method may return several named lists, e.g. ordered and score order).

    Returns one row per list name and p50/p99 milliseconds per method."""
    from tqdm import tqdm

    lists: dict[str, list[Sequence[int]]] = {}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    for q in tqdm(queries, desc="continuation", unit="playlist", disable=not progress, leave=False):
        for m, fn in methods.items():
            t0 = time.perf_counter()
            got = fn(q.seed, n)
            seconds[m].append(time.perf_counter() - t0)
            for name, lst in got.items():
                lists.setdefault(name, []).append(lst)
    rows = [
        {"method": name, **score_lists(v, queries, n=n, codes=codes, tempos=tempos)}
        for name, v in lists.items()
    ]
    timing = {
        m: {
            "p50_ms": round(float(np.percentile(v, 50)) * 1000, 2),
            "p99_ms": round(float(np.percentile(v, 99)) * 1000, 2),
        }
        for m, v in seconds.items()
        if v
    }
    return pd.DataFrame(rows), timing


#: candidate sources compared as baselines when the index has them: (name, label, also with the seed
#: weighted uniformly, as the playlist weighs it)
BASELINES = (
    ("itemknn", "item-kNN", True),
    ("rp3beta", "RP3beta", True),
    ("vsknn", "V-SKNN", False),
    ("ease", "EASE", True),
    ("als", "ALS", False),
    ("popular", "popularity", False),
)


def playlist_methods(
    maker,
    *,
    arc: str = "flat",
    selections: Sequence[str] | None = None,
) -> dict[str, Callable]:
    """Per selection (default: every one the maker can make): the ordered playlist and the same tracks
    in score order (one call gives both)."""

    def method(sel):
        def fn(seed, n):
            rows, ranks, _, _ = maker.rows(seed, n, arc=arc, selection=sel)
            by_rank = [r for _, r in sorted(zip(ranks, rows))]
            return {f"playlist {sel}, ordered": rows, f"playlist {sel}, score order": by_rank}

        return fn

    return {f"playlist {s}": method(s) for s in (maker.selections if selections is None else selections)}


def baseline_methods(recommender, *, uniform: bool = True) -> dict[str, Callable]:
    """Each candidate source of the index alone (fitted on the training playlists only), the ranked hybrid
    as the index serves it, and (``uniform``) the recency-weighted sources again with every seed track
    weighted alike, as the playlist weighs them."""
    from .playlist import with_decay

    def one(src, lab):
        return lambda seed, n: {lab: src.recommend(seed, n).rows.tolist()}

    out = {"hybrid (index settings)": one(recommender, "hybrid (index settings)")}
    flat = with_decay(recommender, 1.0) if uniform else None
    for name, label, also_uniform in BASELINES:
        src = recommender.sources.get(name)
        if src is not None:
            out[label] = one(src, label)
            if flat is not None and also_uniform:
                out[f"{label}, uniform seed"] = one(flat.sources[name], f"{label}, uniform seed")
    return out


def _better(a: pd.Series, b: pd.Series, n: int) -> bool:
    """a beats b on recall@n, ties broken by R-precision."""
    return (a[f"recall@{n}"], a["r_precision"]) > (b[f"recall@{n}"], b["r_precision"])


def evaluate_continuation(
    engine,
    histories,
    *,
    valid=None,
    n: int = 50,
    n_seed: int = 10,
    min_tracks: int = 15,
    arc: str = "flat",
    max_playlists: int | None = None,
    seed: int = 0,
    config=None,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict]:
    """Continuation of held-out playlists: the playlist (ordered and in score order) beside the baselines.

    With ``valid`` (other held-out playlists) every selection (fusion, single shot, iterative) is scored
    there first and the best one is marked ``chosen``; the test table shows all, from the same run."""
    from .playlist import PlaylistMaker

    maker = PlaylistMaker.from_engine(engine, config)
    row_of = {str(t): i for i, t in enumerate(engine.tracks.ids.tolist())}
    info: dict = {"n": n, "n_seed": n_seed, "min_tracks": min_tracks, "arc": arc}
    chosen = maker.config.selection
    if chosen == "auto":
        chosen = "ranked" if "ranked" in maker.selections else "fusion"
    if valid is not None:
        vq, vinfo = continuation_queries(
            valid, row_of, n_seed=n_seed, min_tracks=min_tracks, max_playlists=max_playlists, seed=seed
        )
        vtab, _ = run(
            playlist_methods(maker, arc=arc),
            vq,
            n=n,
            codes=maker.codes,
            tempos=maker.tempos,
            progress=progress,
        )
        v = vtab.set_index("method")
        chosen = None
        for sel in maker.selections:
            if chosen is None or _better(
                v.loc[f"playlist {sel}, score order"], v.loc[f"playlist {chosen}, score order"], n
            ):
                chosen = sel
        info["validation"] = {**vinfo, "results": vtab.to_dict(orient="records"), "chosen": chosen}
    queries, qinfo = continuation_queries(
        histories, row_of, n_seed=n_seed, min_tracks=min_tracks, max_playlists=max_playlists, seed=seed
    )
    methods = {**playlist_methods(maker, arc=arc), **baseline_methods(engine.recommender)}
    table, timing = run(methods, queries, n=n, codes=maker.codes, tempos=maker.tempos, progress=progress)
    info.update(
        qinfo,
        chosen=chosen,
        latency=timing,
        sources=list(engine.recommender.sources),
        recommender=dict(engine.recommender.info),
    )
    return table, info
