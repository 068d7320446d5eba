"""Ranking evaluation: leave-last-out HitRate@K, MRR@K, NDCG@K, coverage; every method on one split.

Each user's last (non-skipped) play is held out; everything else is training. Play counts, rules,
every candidate source and the learned ranker are fitted on the training part only (the ranker
holds out its own targets inside it), so the held-out play cannot leak. The context of a test user
is their training plays (the last ``n_recent``). Methods, all composed from public pieces:

- ``hybrid``: the two-stage recommender (sources + LightGBM ranker; the blend when it falls back);
- ``blend``: the fixed weighted blend of rules, content, cluster, artist and album (the old hybrid);
- each candidate source alone (``itemknn``, ``sequence``, ``vsknn``, ``als``, ``rules``, ``content``,
  ``artist``, ``album``, ``cluster``) and ``popularity``.

:func:`ablate` reruns the hybrid and ``content`` on the same split with feature blocks removed from
the stored embeddings, to show what each block contributes.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError
from .sources.base import Interactions
from .users import read_histories

log = logging.getLogger(__name__)


def rank_metrics(ranked: Iterable[list[int]], targets: Iterable[int], *, k: int) -> dict[str, float]:
    """HitRate@k, MRR@k and NDCG@k for one held-out item per user."""
    hits, rr, ndcg, n = 0, 0.0, 0.0, 0
    for recs, t in zip(ranked, targets):
        n += 1
        recs = list(recs)[:k]
        if t in recs:
            r = recs.index(t) + 1
            hits += 1
            rr += 1.0 / r
            ndcg += 1.0 / np.log2(r + 1)
    n = max(n, 1)
    return {f"hit@{k}": hits / n, f"mrr@{k}": rr / n, f"ndcg@{k}": ndcg / n}


def leave_last_out(histories: pd.DataFrame, *, min_plays: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train plays, test rows user_id/target) holding out each user's last play (users with >= min_plays)."""
    h = histories
    if "skipped" in h.columns:
        h = h[~h["skipped"]]
    h = h.sort_values(["user_id", "position"], kind="stable")
    size = h.groupby("user_id", sort=False)["track_id"].transform("size")
    is_last = h.groupby("user_id", sort=False).cumcount(ascending=False) == 0
    test_mask = is_last & (size >= min_plays)
    test = (h.loc[test_mask, ["user_id", "track_id"]].rename(columns={"track_id": "target"})
            .reset_index(drop=True))
    return h.loc[~test_mask].reset_index(drop=True), test


def playlist_histories(table) -> pd.DataFrame:
    """Real playlists as histories: user_id = playlist_id, position = row order
    (TidyTuesday-shaped tables)."""
    from .errors import SchemaError
    from .io import read_table

    df = read_table(table) if not hasattr(table, "columns") else table
    missing = [c for c in ("playlist_id", "track_id") if c not in df.columns]
    if missing:
        raise SchemaError(f"{table if isinstance(table, str) else 'table'}: "
                          f"missing column(s) {', '.join(missing)}")
    df = df[df["playlist_id"].notna() & df["track_id"].notna()]
    out = df[["playlist_id", "track_id"]].rename(columns={"playlist_id": "user_id"}).copy()
    out["position"] = out.groupby("user_id", sort=False).cumcount()
    return out[["user_id", "position", "track_id"]].reset_index(drop=True)


@dataclass
class Split:
    """One leave-last-out split prepared for ranking: every method of a run is scored on it."""

    train: pd.DataFrame
    test: pd.DataFrame
    interactions: Interactions  # the training plays as catalogue rows
    recent: list[list[int]]  # per test user, the last n_recent training rows (oldest first)
    targets: np.ndarray  # per test user, the held-out row
    popularity: np.ndarray  # training play counts per row
    n_items: int
    n_recent: int
    n_unknown: int
    k: int
    protocol: str = "last"  # last: each user's last play held out | users: whole users held out

    def info(self) -> dict:
        cold = self.popularity == 0
        return {"test_users": len(self.test), "train_plays": len(self.train), "unknown_plays": self.n_unknown,
                "train_users": int(self.train["user_id"].nunique()), "protocol": self.protocol,
                "cold_targets": float(np.mean(cold[self.targets])),
                "n_cold_targets": int(cold[self.targets].sum()), "k": self.k, "n_recent": self.n_recent}


def user_holdout(histories: pd.DataFrame, *, share: float, seed: int = 0,
                 min_plays: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train plays, test plays): a seeded ``share`` of the users with ``min_plays``+ plays held out whole."""
    if not 0.0 < share < 1.0:
        raise InputError(f"test share must be between 0 and 1, not {share}")
    size = histories.groupby("user_id", sort=False)["track_id"].size()
    users = np.sort(size.index[size >= min_plays].to_numpy(dtype=object))
    n = int(round(share * len(users)))
    if n == 0 or n == len(size):
        raise InputError(f"histories: {len(users)} user(s) with {min_plays}+ plays of {len(size)}: "
                         "too few to hold whole users out")
    test_users = set(np.random.default_rng(seed).choice(users, n, replace=False).tolist())
    is_test = histories["user_id"].isin(test_users)
    return histories[~is_test].reset_index(drop=True), histories[is_test].reset_index(drop=True)


def _known_plays(engine, histories, what: str) -> tuple[pd.DataFrame, int]:
    h = read_histories(histories)
    if "skipped" in h.columns:
        h = h[~h["skipped"]]
    known = h["track_id"].isin(engine.tracks.row_of)
    if not known.any():
        raise InputError(f"{what}: no play refers to a track in the index")
    return h[known], int((~known).sum())


def prepare_split(engine, histories, *, k: int = 10, max_users: int | None = None, seed: int = 0,
                  n_recent: int | None = None, protocol: str = "last", test_share: float = 0.2,
                  test_histories=None) -> Split:
    """The evaluation split; play counts are re-derived from the training part (no leakage: every source,
    the rules source included, is fitted on it alone).

    ``protocol="last"``: each user's last play is held out, the rest is training. ``"users"``: whole users
    are held out (a seeded ``test_share``, or every user of ``test_histories``); no source, rule or ranker
    sees them; their context is all their plays but the last, the target is the last.
    """
    if protocol not in ("last", "users"):
        raise InputError(f"unknown split {protocol!r} (last or users)")
    h, n_unknown = _known_plays(engine, histories, "histories")
    if protocol == "users" or test_histories is not None:
        protocol = "users"
        if test_histories is not None:
            held, n_unk_test = _known_plays(engine, test_histories, "test histories")
            n_unknown += n_unk_test
            train = h[~h["user_id"].isin(set(held["user_id"]))].reset_index(drop=True)
        else:
            train, held = user_holdout(h, share=test_share, seed=seed)
        if len(train) == 0:
            raise InputError("histories: no training user is left once the test users are held out")
        context, test = leave_last_out(held)
    else:
        train, test = leave_last_out(h)
        context = train
    if len(test) == 0:
        raise InputError("histories: no user has at least 2 plays, nothing to hold out")
    if max_users and len(test) > max_users:
        test = test.sample(n=max_users, random_state=seed).reset_index(drop=True)
    n_items = engine.n_tracks
    row_of = engine.tracks.row_of
    n_recent = n_recent or engine.config.recommend.max_context
    recent_of = {u: g["track_id"].map(row_of).to_numpy()[-n_recent:].tolist()
                 for u, g in (context[context["user_id"].isin(set(test["user_id"]))]
                              .groupby("user_id", sort=False))}
    test = test[test["user_id"].isin(recent_of)].reset_index(drop=True)
    if len(test) == 0:
        raise InputError("histories: no test user has a training play left")
    targets = test["target"].map(row_of).to_numpy()
    inter = Interactions.from_histories(train, row_of, n_items)
    return Split(train=train, test=test, interactions=inter,
                 recent=[recent_of[u] for u in test["user_id"].tolist()], targets=targets,
                 popularity=inter.popularity(), n_items=n_items,
                 n_recent=n_recent, n_unknown=n_unknown, k=k, protocol=protocol)


def split_recommender(engine, split: Split, *, content=None, config=None):
    """The two-stage recommender fitted on this split's training part (optionally over other content)."""
    cfg = dataclasses.replace(config or engine.config.recommend, max_context=max(split.n_recent, 1))
    return engine.make_recommender(split.interactions, config=cfg, content=content)


#: contexts per ``recommend_many`` call of a batched method (run_methods)
BATCH = 64


def _rows(fn):
    return lambda r, k: fn(r, k).rows.tolist()


def _batched(many: Callable) -> Callable[[list[int], int], list[int]]:
    """A method over ``many(contexts, k) -> [Ranked]`` (``recommend_many``); ``run_methods`` calls its
    ``many`` attribute on :data:`BATCH` users at once (the same lists as one call per user)."""
    def one(r: list[int], k: int) -> list[int]:
        return many([r], k)[0].rows.tolist()

    one.many = lambda rs, k: [x.rows.tolist() for x in many(rs, k)]
    return one


def hybrid_methods(rec, *, sources: bool = True) -> dict[str, Callable[[list[int], int], list[int]]]:
    """The hybrid, the old blend and (``sources``) every candidate source alone,
    over one fitted recommender."""
    out = {"hybrid": _batched(rec.recommend_many)}
    if rec.mode != "blend":
        out["blend"] = _batched(lambda rs, k: rec.recommend_many(rs, k, mode="blend"))
    for name, src in rec.sources.items():
        if sources or name == "content":
            out["popularity" if name == "popular" else name] = _rows(src.recommend)
    return out


def run_methods(methods: dict[str, Callable[[list[int], int], list[int]]], split: Split, *,
                progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """Rank for every test user with every method; one row of metrics per method, and timings per method
    (per call; for a batched method, its time per :data:`BATCH` users spread evenly over them)."""
    from .progress import bar

    k = split.k
    ranked: dict[str, list[list[int]]] = {m: [] for m in methods}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    with bar(total=len(split.recent), desc="evaluating", unit="user", enabled=progress) as pbar:
        for s in range(0, len(split.recent), BATCH):
            block = split.recent[s:s + BATCH]
            for m, fn in methods.items():
                many = getattr(fn, "many", None)
                if many is not None:
                    t0 = time.perf_counter()
                    ranked[m] += many(block, k)
                    seconds[m] += [(time.perf_counter() - t0) / len(block)] * len(block)
                    continue
                for r in block:
                    t0 = time.perf_counter()
                    ranked[m].append(fn(r, k))
                    seconds[m].append(time.perf_counter() - t0)
            pbar.update(len(block))
    cold = split.popularity == 0
    targets = split.targets.tolist()
    rows = []
    for m, lists in ranked.items():
        met = rank_metrics(lists, targets, k=k)
        recs = [x for lst in lists for x in lst]
        cold_hit = [t in lst[:k] for lst, t in zip(lists, targets) if cold[t]]
        met["cold_hits"] = float(np.sum(cold_hit)) / max(len(targets), 1)  # share of all users
        met[f"cold_hit@{k}"] = float(np.mean(cold_hit)) if cold_hit else float("nan")
        met["coverage"] = len(set(recs)) / split.n_items
        met["cold_share"] = float(np.mean(cold[recs])) if recs else 0.0
        rows.append({"method": m, **met})
    ms = {m: np.asarray(v) * 1000 for m, v in seconds.items()}
    timing = {m: {"p50_ms": round(float(np.percentile(v, 50)), 3),
                  "p99_ms": round(float(np.percentile(v, 99)), 3),
                  **({"batch": BATCH} if hasattr(methods[m], "many") else {})}
              for m, v in ms.items() if len(v)}
    return pd.DataFrame(rows), timing


def candidate_recall(rec, split: Split) -> float:
    """Share of test users whose held-out track is among the hybrid's candidates at all."""
    found = 0
    for r, t in zip(split.recent, split.targets.tolist()):
        cand = rec.candidates(rec.context(r)).rows
        pos = np.searchsorted(cand, t)
        found += int(pos < len(cand) and cand[pos] == t)
    return found / max(len(split.recent), 1)


#: the baselines of ``evaluate(baselines=True)``, each tuned on held-out training users
BASELINES = ("itemknn", "rp3beta", "vsknn", "ease", "als")


def tuned_baselines(engine, split: Split, *, names=BASELINES, seed: int = 0,
                    config=None) -> tuple[dict, dict]:
    """Each baseline tuned on a validation split of the training users only (its grid, one coordinate
    pass), then refitted on every training user: ({name: fitted source}, tuning report)."""
    from .sources import SourceData, make_source
    from .sources.tune import pick_users, tune_sources

    cfg = dataclasses.replace(config or engine.config.recommend, max_context=max(split.n_recent, 1),
                              tune_seconds=max((config or engine.config.recommend).tune_seconds, 1.0)
                              * len(names))
    data = SourceData(engine.content(), split.interactions)
    val = pick_users(split.interactions, cfg.tune_validation, np.random.default_rng(seed + 7))
    tuned, report = tune_sources(data, cfg, list(names), val_users=val, seed=seed + 7)
    return {f"{n} (tuned)": make_source(n, tuned).fit(data) for n in names}, report


def evaluate(engine, histories, *, k: int = 10, max_users: int | None = None, seed: int = 0,
             n_recent: int | None = None, progress: bool = False, protocol: str = "last",
             test_share: float = 0.2, test_histories=None,
             baselines: bool | None = None) -> tuple[pd.DataFrame, dict]:
    """Compare the hybrid, the old blend, every source, popularity and (``baselines``, default with
    whole users held out) the tuned baselines on one split: (table, info)."""
    split = prepare_split(engine, histories, k=k, max_users=max_users, seed=seed, n_recent=n_recent,
                          protocol=protocol, test_share=test_share, test_histories=test_histories)
    t0 = time.perf_counter()
    rec = split_recommender(engine, split)
    fit_s = time.perf_counter() - t0
    methods = hybrid_methods(rec)
    info = {}
    if baselines if baselines is not None else split.protocol == "users":
        t1 = time.perf_counter()
        fitted, info["baselines"] = tuned_baselines(engine, split, seed=seed)
        info["baselines"]["seconds"] = round(time.perf_counter() - t1, 2)
        methods.update({name: _rows(src.recommend) for name, src in fitted.items()})
    table, timing = run_methods(methods, split, progress=progress)
    info = {**split.info(), **info, "rules": len(rec.rules), "recommender": rec.info,
            "fit_seconds": round(fit_s, 3),
            "ranker_seconds": rec.info.get("ranker_seconds"),
            "candidate_recall": candidate_recall(rec, split), "latency": timing}
    return table, info


# --------------------------------------------------------------------------------------------- block ablation
def block_slices(engine) -> dict[str, slice]:
    """Columns of each block in the stored embeddings, from the embedding builder's layout."""
    return engine.block_slices


def drop_blocks(embeddings: np.ndarray, slices: dict[str, slice], drop: Iterable[str]) -> np.ndarray:
    """Zero the dropped blocks' columns and L2-normalise again (rows left with nothing stay zero).

    The stored rows are already normalised and every column of a row shares one scale, so this equals
    embedding the track from the kept blocks alone with the same fitted means and weights.
    """
    X = np.array(embeddings, dtype=np.float32, copy=True)
    for name in drop:
        X[:, slices[name]] = 0.0
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    np.divide(X, norms, out=X, where=norms > 0)
    return X


def cosine_change(base: np.ndarray, other: np.ndarray) -> tuple[float, int]:
    """Mean (1 - cosine) between rows of two L2-normalised embeddings over rows non-zero in ``base``,
    and how many of those rows became all-zero (their cosine counts as 0)."""
    live = np.linalg.norm(base, axis=1) > 0
    if not live.any():
        return 0.0, 0
    cos = np.einsum("ij,ij->i", base[live].astype(np.float64), other[live].astype(np.float64))
    emptied = int((np.linalg.norm(other[live], axis=1) == 0).sum())
    return float(np.mean(np.clip(1.0 - cos, 0.0, 2.0))), emptied


def ablation_variants(blocks: list[str]) -> list[tuple[str, list[str]]]:
    """(label, blocks dropped): all blocks, each block removed in turn, and each block alone (3+ blocks)."""
    out = [("all", [])]
    out += [(f"-{b}", [b]) for b in blocks]
    if len(blocks) >= 3:
        out += [(f"only {b}", [x for x in blocks if x != b]) for b in blocks]
    return out


def ablate(engine, histories, *, k: int = 10, clusters: str = "recompute", max_users: int | None = None,
           seed: int = 0, n_recent: int | None = None, progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """Which feature blocks matter: hybrid and content-only on ONE leave-last-out split, per block subset.

    For every variant the stored embeddings lose the dropped blocks' columns (builder layout), are
    re-normalised and searched through a new exact (flat) FAISS index; ``clusters="recompute"`` re-runs
    k-means on them (same k and seed), ``"keep"`` keeps the built clusters. Every variant's sources (the
    rules source too) are fitted on the same training part. Returns (one row per variant, info).
    """
    from .index import TrackIndex

    if clusters not in ("recompute", "keep"):
        raise InputError(f"clusters must be 'recompute' or 'keep', not {clusters!r}")
    slices = block_slices(engine)
    names = list(slices)
    if len(names) < 2:
        raise InputError(f"the index has one feature block ({names[0]}): nothing to ablate "
                         "(build it with several, e.g. --features DIR)")
    split = prepare_split(engine, histories, k=k, max_users=max_users, seed=seed, n_recent=n_recent)
    icfg = dataclasses.replace(engine.config.index, kind="flat", n_clusters=engine.index.n_clusters)
    base = drop_blocks(engine.embeddings, slices, [])
    rows, n_rules = [], 0
    for label, drop in ablation_variants(names):
        X = drop_blocks(engine.embeddings, slices, drop)
        index = TrackIndex(icfg).fit(X) if clusters == "recompute" else engine.index.reindex(X, icfg)
        rec = split_recommender(engine, split, content=engine.content(embeddings=X, index=index,
                                                                       clusters=index.clusters))
        n_rules = len(rec.rules)
        table = run_methods(hybrid_methods(rec, sources=False), split,
                            progress=progress)[0].set_index("method")
        change, emptied = cosine_change(base, X)
        row = {"variant": label, "blocks": ",".join(b for b in names if b not in drop)}
        for m in ("hybrid", "content"):
            for met in (f"hit@{k}", f"mrr@{k}", f"ndcg@{k}"):
                row[f"{m} {met}"] = float(table.loc[m, met])
        row["cos_change"] = change
        row["emptied"] = emptied
        rows.append(row)
        log.info("ablation %s: %s", label, row)
    info = {**split.info(), "rules": n_rules, "blocks": names, "clusters": clusters,
            "n_clusters": int(icfg.n_clusters), "index": "flat",
            "dims": {n: s.stop - s.start for n, s in slices.items()}}
    return pd.DataFrame(rows), info
