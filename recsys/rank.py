"""Second stage: a LightGBM lambdarank ranker over the candidates of every source, or the fallback blend.

:class:`HybridRecommender` asks each source for candidates, describes every (context, candidate)
pair with features (each source's score and rank, popularity, cold flag, cosine to the last track
and to the profile, audio-statistic differences, same artist/album share, context length) and
orders them with the ranker. The ranker is trained at build time on the user's own histories
(:func:`fit_hybrid`): per query user a target play is held out (the last one, or a random one)
with everything after it, the sources are fitted on what remains, and the ranker learns to put
the target first among their candidates; a share of the users is kept for early stopping.
With fewer than ``ranker.min_users`` users (or no histories) the fixed blend of
the sources' weights (``weight`` in each source's settings) is used instead.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import threads
from .errors import IndexFormatError, InputError
from .recommend import RecommendConfig
from .rules import RULE_COLUMNS
from .sources import SOURCES, make_source
from .sources.tune import cut_queries
from .sources.base import (
    Context,
    Interactions,
    Ranked,
    Recommender,
    Source,
    SourceData,
    log_scaled,
    sorted_unique,
    with_settings,
)

log = logging.getLogger(__name__)

#: audio statistics kept per track for the ranker's "how well does it follow" features
AUDIO_STATS = ("tempo", "key", "mode", "energy", "valence", "danceability", "acousticness", "loudness")
SOURCE_FEATURES = ("score", "rank", "rel")  # per source: its score, its rank, score / its best in the query
RANKER_FILE = "ranker.txt"
CONTINUATION_FILE = "ranker_continuation.txt"  # the playlist-continuation ranker (LightGBM text)
META_FILE = "recommender.json"
META_VERSION = 1


def audio_stats(catalog) -> np.ndarray | None:
    """(n, len(AUDIO_STATS)) float32 of the catalogue's audio statistics (NaN when missing); None if none."""
    cols = [c for c in AUDIO_STATS if c in catalog.columns]
    if not cols:
        return None
    out = np.full((len(catalog), len(AUDIO_STATS)), np.nan, dtype=np.float32)
    for c in cols:
        out[:, AUDIO_STATS.index(c)] = pd.to_numeric(catalog[c], errors="coerce").to_numpy(dtype=np.float32)
    return out


def _fifths(key: np.ndarray, mode: np.ndarray) -> np.ndarray:
    """Position on the circle of fifths (0..11), minor keys moved to their relative major."""
    k = np.where(mode == 0, (key + 3) % 12, key)
    return (k * 7) % 12


def feature_names(sources: Sequence[str]) -> list[str]:
    """Column names of the ranker's feature matrix for these sources."""
    return [f"{s}_{what}" for s in sources for what in SOURCE_FEATURES] + [n for n, _ in CONTEXT_FEATURES]


class Query:
    """One (context, candidate union) pair with the intermediates its feature functions share (lazily)."""

    def __init__(self, rec: HybridRecommender, ctx: Context, cand: Candidates) -> None:
        self.rec, self.ctx, self.cand, self.rows, self.n = rec, ctx, cand, cand.rows, len(cand.rows)
        self.content = rec.data.content
        self.recent, self.w = ctx.recent(rec.config.max_recent)
        self.last = int(self.recent[0])

    @functools.cached_property
    def ranks(self) -> np.ndarray:
        """(sources, candidates) ranks, NaN where a source did not propose the candidate."""
        return np.vstack([self.cand.ranks[s] for s in self.rec.sources])

    @functools.cached_property
    def stats(self) -> np.ndarray | None:
        """(candidates, len(AUDIO_STATS)) audio statistics of the candidates (None without statistics)."""
        S = self.content.stats
        return None if S is None else S[self.rows]

    @functools.cached_property
    def emb(self) -> np.ndarray:
        return self.content.embeddings[self.rows]

    @functools.cached_property
    def profile(self) -> np.ndarray:
        E = self.content.embeddings
        prof = (E[self.recent] * self.w[:, None].astype(np.float32)).sum(0)
        return prof / max(float(np.linalg.norm(prof)), 1e-9)

    def share(self, key: str) -> np.ndarray:
        """Recency-weighted share of the context with the candidate's artist / album."""
        codes = self.content.meta.get(key)
        if codes is None:
            return np.full(self.n, np.nan)
        rc, cc = codes[self.recent], codes[self.rows]
        match = (cc[:, None] == rc[None, :]) & (rc[None, :] >= 0)
        return (match * self.w[None, :]).sum(1) / self.w.sum()

    def stat(self, name: str) -> tuple[np.ndarray, float] | None:
        """(candidates' values, last track's value) of one audio statistic; None without statistics."""
        if self.stats is None:
            return None
        j = AUDIO_STATS.index(name)
        return self.stats[:, j], float(self.content.stats[self.last, j])

    def full(self, v: float) -> np.ndarray:
        return np.full(self.n, v)


def _delta(name: str):
    def fn(q: Query) -> np.ndarray:
        got = q.stat(name)
        return q.full(np.nan) if got is None else np.abs(got[0] - got[1])
    return fn


def _tempo(q: Query) -> np.ndarray:
    got = q.stat("tempo")
    if got is None:
        return q.full(np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(np.log(got[0] / got[1]))
    return np.where(np.isfinite(t), t, np.nan)


def _fifths_distance(q: Query) -> np.ndarray:
    key, mode = q.stat("key"), q.stat("mode")
    if key is None:
        return q.full(np.nan)
    d = np.abs(_fifths(key[0], mode[0]) - _fifths(np.asarray(key[1]), np.asarray(mode[1])))
    return np.minimum(d, 12 - d)


def _same_mode(q: Query) -> np.ndarray:
    got = q.stat("mode")
    return q.full(np.nan) if got is None else (got[0] == got[1]).astype(np.float32)


def _energy_profile(q: Query) -> np.ndarray:
    S = q.content.stats
    if S is None:
        return q.full(np.nan)
    ctx_e = S[q.recent, AUDIO_STATS.index("energy")]
    if not np.isfinite(ctx_e).any():
        return q.full(np.nan)
    return np.abs(q.stats[:, AUDIO_STATS.index("energy")] - np.nanmean(ctx_e))


#: the ranker's context features after the per-source ones (SOURCE_FEATURES): (column name, function of the
#: query); a new feature is one line here (tests/test_rank.py checks names against columns)
CONTEXT_FEATURES: tuple[tuple[str, Callable[[Query], np.ndarray]], ...] = (
    ("log_plays", lambda q: q.rec._log_plays[q.rows]),
    ("catalog_popularity", lambda q: q.rec._catpop[q.rows]),
    ("cold", lambda q: (q.rec._log_plays[q.rows] == 0).astype(np.float32)),
    ("cos_last", lambda q: q.emb @ q.content.embeddings[q.last]),
    ("cos_profile", lambda q: q.emb @ q.profile),
    ("same_cluster_last", lambda q: (q.content.clusters[q.rows] == q.content.clusters[q.last]).astype(
        np.float32)),
    ("artist_share", lambda q: q.share("artist")),
    ("album_share", lambda q: q.share("album")),
    ("n_sources", lambda q: (~np.isnan(q.ranks)).sum(axis=0) if q.rec.sources else q.full(0.0)),
    ("context_len", lambda q: q.full(float(len(q.ctx.seq)))),
    ("known_share", lambda q: q.full(float(np.mean(q.rec._log_plays[q.ctx.rows] > 0)))),
    ("best_rank", lambda q: np.fmin.reduce(q.ranks, axis=0) if q.rec.sources else q.full(np.nan)),
    ("tempo_log_ratio", _tempo),
    ("fifths_distance", _fifths_distance),
    ("same_mode", _same_mode),
    ("energy_delta", _delta("energy")),
    ("valence_delta", _delta("valence")),
    ("danceability_delta", _delta("danceability")),
    ("acousticness_delta", _delta("acousticness")),
    ("loudness_delta", _delta("loudness")),
    ("energy_delta_profile", _energy_profile),
)


@dataclasses.dataclass
class Candidates:
    """The candidate union of one query with each source's scores and ranks (NaN: not proposed)."""

    rows: np.ndarray  # sorted unique rows
    scores: dict[str, np.ndarray]  # per source, 0 where not proposed
    ranks: dict[str, np.ndarray]  # per source, NaN where not proposed
    best: dict[str, float] = dataclasses.field(default_factory=dict)  # per source, its best score

    def take(self, idx: np.ndarray) -> Candidates:
        """The candidates at positions ``idx`` (sorted), with the query's best scores kept."""
        return Candidates(self.rows[idx], {s: v[idx] for s, v in self.scores.items()},
                          {s: v[idx] for s, v in self.ranks.items()}, self.best)


class RankQuery(NamedTuple):
    """One query for :meth:`Ranker.rank_many`: features, tie-breakers, catalogue rows, how many rows the
    whole model scores, and the cold flags and slots of the never-played candidates."""

    X: np.ndarray
    ties: np.ndarray
    rows: np.ndarray
    keep: int
    cold: np.ndarray | None = None
    slots: int = 0


class Ranker:
    """LightGBM lambdarank over (context, candidate) features; saved as LightGBM text."""

    continuation_: Ranker | None = None  # the ranker for continuing a playlist, trained beside this one

    def __init__(self, config: RecommendConfig | None = None) -> None:
        self.config = config or RecommendConfig()

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray, *, names: list[str],
            X_val=None, y_val=None, groups_val=None) -> Ranker:
        """Train on query groups (sizes ``groups``); early-stops on the validation groups when given."""
        import lightgbm as lgb

        c = self.config
        params = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [10],
                  "learning_rate": c.ranker.learning_rate, "num_leaves": c.ranker.leaves,
                  "min_data_in_leaf": c.ranker.min_leaf, "feature_fraction": 0.8,
                  "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0, "seed": c.seed,
                  "deterministic": True, "force_row_wise": True, "num_threads": 2, "verbose": -1}
        train = lgb.Dataset(X, y, group=groups, feature_name=names, free_raw_data=True)
        valid, callbacks = [], []
        if X_val is not None and len(groups_val):
            valid = [lgb.Dataset(X_val, y_val, group=groups_val, reference=train)]
            callbacks = [lgb.early_stopping(c.ranker.early_stop, verbose=False)]
        self.booster_ = lgb.train(params, train, num_boost_round=c.ranker.rounds, valid_sets=valid,
                                  callbacks=callbacks)
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        self.names_ = list(names)
        score = self.booster_.best_score.get("valid_0", {}) if valid else {}
        self.valid_ndcg_ = float(score.get("ndcg@10", np.nan)) if score else None
        return self

    def predict(self, X: np.ndarray, *, trees: int | None = None) -> np.ndarray:
        """Scores of the rows of ``X`` by the whole model (or by its first ``trees`` trees)."""
        n = min(trees or self.best_iteration_, self.best_iteration_)
        return self.booster_.predict(X, num_iteration=n, num_threads=1)

    def rank(self, X: np.ndarray, ties: np.ndarray, rows: np.ndarray, keep: int, *,
             cold: np.ndarray | None = None, slots: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(order, scores): positions of ``X``'s rows best first, score desc, then ``ties`` desc, then row.

        A cascade (early exit of an additive ensemble): the first ``cut_trees`` trees score every row,
        the whole model only the best ``keep`` of them and the best ``slots`` rows flagged ``cold``
        beyond those; the rest follow in first-stage order with score NaN. Scores are the whole
        model's, exactly. On the MPD dev index the top 10 is the same for 99.5 % of contexts at 22 %
        of the work (docs/serve.md)."""
        return self.rank_many([RankQuery(X, ties, rows, keep, cold, slots)])[0]

    def rank_many(self, queries: Sequence[RankQuery]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`rank` of every query with one LightGBM call per cascade stage over all their rows
        stacked: a row's score does not depend on the other rows, so each answer is ``rank``'s exactly."""
        m = self.config.ranker.cut_trees
        staged = [m > 0 and 2 * m <= self.best_iteration_ and len(q.X) > q.keep for q in queries]
        first_scores = iter(self._predict_stacked([q.X for q, c in zip(queries, staged) if c], trees=m))
        cut: list[tuple[np.ndarray, np.ndarray] | None] = []
        for q, c in zip(queries, staged):
            if not c:
                cut.append(None)
                continue
            first = np.lexsort((q.rows, -q.ties, -next(first_scores)))
            top, later = first[:q.keep], first[q.keep:]
            if q.slots and q.cold is not None:
                top = np.concatenate((top, later[q.cold[later]][:q.slots]))
            cut.append((first, top))
        whole = self._predict_stacked([q.X if c is None else q.X[c[1]] for q, c in zip(queries, cut)])
        out = []
        for q, c, s in zip(queries, cut, whole):
            if c is None:
                out.append((np.lexsort((q.rows, -q.ties, -s)), s))
                continue
            first, top = c
            score = np.full(len(q.X), np.nan)
            score[top] = s
            rest = np.ones(len(q.X), bool)
            rest[top] = False
            best = top[np.lexsort((q.rows[top], -q.ties[top], -s))]
            out.append((np.concatenate((best, first[rest[first]])), score))
        return out

    def _predict_stacked(self, Xs: list[np.ndarray], *, trees: int | None = None) -> list[np.ndarray]:
        """``predict`` of each matrix, done as one call over them stacked (one call's overhead)."""
        if not Xs:
            return []
        score = self.predict(Xs[0] if len(Xs) == 1 else np.vstack(Xs), trees=trees)
        return np.split(score, np.cumsum([len(X) for X in Xs])[:-1])

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contributions (SHAP values from LightGBM ``pred_contrib``), bias column dropped."""
        return self.booster_.predict(X, num_iteration=self.best_iteration_, pred_contrib=True,
                                     num_threads=1)[:, :-1]

    def save(self, directory) -> None:
        from .io import write_text

        write_text(Path(directory) / RANKER_FILE,
                   self.booster_.model_to_string(num_iteration=self.best_iteration_))
        if self.continuation_ is not None:
            c = self.continuation_
            write_text(Path(directory) / CONTINUATION_FILE,
                       c.booster_.model_to_string(num_iteration=c.best_iteration_))

    @classmethod
    def load(cls, directory, config: RecommendConfig | None = None) -> Ranker:
        """Read ``ranker.txt`` back (a cut or damaged file is an IndexFormatError)."""
        from .io import read_lightgbm

        self = cls(config)
        self.booster_ = read_lightgbm(Path(directory) / RANKER_FILE, error=IndexFormatError)
        self.best_iteration_ = self.booster_.current_iteration()
        self.names_ = self.booster_.feature_name()
        self.valid_ndcg_ = None
        if (Path(directory) / CONTINUATION_FILE).exists():
            c = self.continuation_ = cls(config)
            c.booster_ = read_lightgbm(Path(directory) / CONTINUATION_FILE, error=IndexFormatError)
            c.best_iteration_, c.names_, c.valid_ndcg_ = c.booster_.current_iteration(), self.names_, None
            if c.booster_.feature_name() != self.names_:
                raise IndexFormatError(f"{Path(directory) / CONTINUATION_FILE}: features do not match "
                                       f"{RANKER_FILE}; rebuild the index")
        return self


def with_cold(order: np.ndarray, cold: np.ndarray, k: int, slots: int) -> np.ndarray:
    """The first k of ``order`` with its best ``slots`` cold candidates (``cold`` per position) among them:
    those already in the first k stay, the others take the last places."""
    top = order[:k]
    want = max(0, slots - int(cold[top].sum()))
    extra = order[k:][cold[order[k:]]][:want]
    if not len(extra):
        return top
    warm = np.flatnonzero(~cold[top])
    drop = set(warm[len(warm) - len(extra):].tolist())
    return np.r_[[t for i, t in enumerate(top.tolist()) if i not in drop], extra].astype(np.int64)


class HybridRecommender(Recommender):
    """Candidates from every source, ordered by the learned ranker (or the blend); reasons per track."""

    name = "hybrid"

    def __init__(self, config: RecommendConfig | None, sources: dict[str, Source], data: SourceData,
                 ranker: Ranker | None = None, info: dict | None = None) -> None:
        super().__init__(config)
        self.sources = dict(sources)
        self.data = data
        self.ranker = ranker
        self.info = dict(info or {})
        self._prepare()

    @property
    def mode(self) -> str:
        """lightgbm (the ranker), source (one source alone: the ranker lost to it at build) or blend."""
        if self.ranker is not None:
            return "lightgbm"
        return "source" if self.info.get("serve") in self.sources else "blend"

    def _prepare(self) -> None:
        d = self.data
        pop = np.asarray(d.popularity, dtype=np.float64)
        self._log_plays = np.log1p(pop).astype(np.float32)
        self._pop_score = log_scaled(pop)
        cp = d.content.catalog_popularity
        self._catpop = (np.full(len(pop), np.nan, np.float32) if cp is None
                        else (np.asarray(cp, dtype=np.float32) / 100.0))
        self._names = feature_names(list(self.sources))
        self._gain = None
        self._weights = {name: float(src.settings.weight) for name, src in self.sources.items()}

    @property
    def rules(self) -> pd.DataFrame:
        """The rules its rules source mined (``recsys.rules.RULE_COLUMNS``; empty without one)."""
        src = self.sources.get("rules")
        return src.table if src is not None else pd.DataFrame(columns=RULE_COLUMNS)

    def _source_gain(self) -> dict[str, float]:
        """Total LightGBM gain of each source's features (orders the reasons; pred_contrib costs ~14 ms
        a call whatever the rows)."""
        if getattr(self, "_gain", None) is None:
            imp = self.ranker.booster_.feature_importance("gain")
            m = len(SOURCE_FEATURES)
            self._gain = {s: float(imp[m * i:m * i + m].sum()) for i, s in enumerate(self.sources)}
        return self._gain

    def budget(self, name: str, *, ranked: bool) -> int:
        """Candidates asked of a source: its own budget (``candidates`` in its settings);
        ``n_rank_candidates`` > 0 caps every source for the ranker (faster, lower recall)."""
        if ranked and self.config.n_rank_candidates > 0:
            return self.config.n_rank_candidates
        return self.sources[name].settings.candidates

    def blend_weights(self, override: dict[str, float] | None = None) -> tuple[dict[str, float], float]:
        """({source: blend weight}, popularity prior): each source's own weight, or ``override``'s
        (keys: source names and ``popularity``; an unknown key is an InputError)."""
        weights, pop = self._weights, float(self.config.w_popularity)
        if override:
            unknown = [k for k in override if k not in weights and k != "popularity"]
            if unknown:
                raise InputError(f"unknown recommend weight(s) {', '.join(unknown)} (the sources: "
                                 f"{', '.join(weights)}, and popularity)")
            weights = {**weights, **{k: float(v) for k, v in override.items() if k != "popularity"}}
            pop = float(override.get("popularity", pop))
        return weights, pop

    def candidates(self, ctx: Context, names: Sequence[str] | None = None) -> Candidates:
        """The union of every (or the named) source's candidates with their scores and ranks."""
        got = {}
        for name in (names or self.sources):
            rows, scores = self.sources[name].candidates(ctx, self.budget(name, ranked=names is None))
            if len(rows):
                got[name] = (rows, scores)
        every = list(self.sources)
        S = np.zeros((len(every), 0))
        R = np.full((len(every), 0), np.nan)
        allr = np.zeros(0, np.int64)
        if got:  # one (sources x union) array each for scores and ranks, filled in one scatter
            cat = np.concatenate([r for r, _ in got.values()])
            allr = sorted_unique(cat)
            S = np.zeros((len(every), len(allr)))
            R = np.full((len(every), len(allr)), np.nan)
            src = np.repeat([every.index(name) for name in got], [len(r) for r, _ in got.values()])
            pos = np.searchsorted(allr, cat)
            S[src, pos] = np.concatenate([sc for _, sc in got.values()])
            R[src, pos] = np.concatenate([np.arange(1, len(r) + 1) for r, _ in got.values()])
        scores = {name: S[i] for i, name in enumerate(every)}
        ranks = {name: R[i] for i, name in enumerate(every)}
        best = {name: float(got[name][1].max()) if name in got else 0.0 for name in self.sources}
        return Candidates(allr, scores, ranks, best)

    def features(self, ctx: Context, cand: Candidates) -> np.ndarray:
        """(n candidates, n features) float32 in ``feature_names(self.sources)`` order."""
        n = len(cand.rows)
        if not n:
            return np.zeros((0, len(self._names)), np.float32)
        X = np.empty((n, len(self._names)), np.float32)  # each column cast once, as astype would
        m = len(SOURCE_FEATURES)  # score, rank, rel
        for i, name in enumerate(self.sources):
            top = cand.best.get(name, 0.0)
            X[:, m * i], X[:, m * i + 1] = cand.scores[name], cand.ranks[name]
            X[:, m * i + 2] = cand.scores[name] / top if top > 0 else 0.0
        q = Query(self, ctx, cand)
        for j, (_, fn) in enumerate(CONTEXT_FEATURES, start=m * len(self.sources)):
            X[:, j] = fn(q)
        return X

    def blend_scores(self, cand: Candidates, weights: dict[str, float] | None = None,
                     popularity: float | None = None) -> np.ndarray:
        """The fixed blend: sum of weight x source score, plus a little popularity."""
        if weights is None:
            weights, popularity = self.blend_weights()
        score = popularity * self._pop_score[cand.rows]
        for name, wt in weights.items():
            if wt and name in cand.scores:
                score = score + wt * cand.scores[name]
        return score

    def recommend(self, recent: Sequence[int], k: int = 10, *, exclude=None, reasons: bool = False,
                  weights: dict[str, float] | None = None, mode: str | None = None) -> Ranked:
        """Top-k rows after ``recent``. ``weights`` (blend weights by source name, and ``popularity``) or
        ``mode="blend"`` use the blend for this call; by default the ranker when there is one."""
        with threads.one_thread():  # small work per request: a second thread only waits for a core
            return self._recommend([recent], k, exclude=exclude, reasons=reasons, weights=weights,
                                   mode=mode)[0]

    def recommend_many(self, contexts: Sequence[Sequence[int]], k: int = 10, *, exclude=None,
                       reasons: bool = False, weights: dict[str, float] | None = None,
                       mode: str | None = None, batch: int = 64) -> list[Ranked]:
        """``[recommend(r, k, ...) for r in contexts]``, the same answers, with the ranker's LightGBM calls
        made once per ``batch`` contexts over all their candidates stacked (a row's score does not
        depend on the others)."""
        contexts = list(contexts)
        out: list[Ranked] = []
        with threads.one_thread():
            for s in range(0, len(contexts), max(1, int(batch))):
                out += self._recommend(contexts[s:s + max(1, int(batch))], k, exclude=exclude,
                                       reasons=reasons, weights=weights, mode=mode)
        return out

    def _recommend(self, contexts: Sequence[Sequence[int]], k: int, *, exclude, reasons: bool,
                   weights: dict[str, float] | None, mode: str | None) -> list[Ranked]:
        """The answers for several contexts: candidates and features one context at a time, the ranker
        over all of them at once, then the top k and (``reasons``) their explanations per context."""
        ctxs = [self.context(recent, exclude) for recent in contexts]
        wmap, pop_w = self.blend_weights(weights)
        use_ranker = self.ranker is not None and not weights and mode != "blend"
        if not weights and mode != "blend" and self.mode == "source":
            src = self.sources[self.info["serve"]]
            out = []
            for ctx in ctxs:
                rows, scores = src.candidates(ctx, k)
                why = [[t] if t else [] for t in src.explain_many(ctx, rows)] if reasons else None
                out.append(Ranked(rows, scores, why))
            return out
        names = None if use_ranker else [s for s in self.sources if wmap[s]]
        todo: list[tuple[int, Context, Candidates, np.ndarray, int, int, np.ndarray | None]] = []
        out: list[Ranked | None] = [None] * len(ctxs)
        for i, ctx in enumerate(ctxs):
            cand = self.candidates(ctx, names)
            if not len(cand.rows):
                out[i] = Ranked(np.zeros(0, np.int64), np.zeros(0), [] if reasons else None)
                continue
            blend = self.blend_scores(cand, wmap, pop_w)
            slots = int(self.info.get("cold_slots", 0)) if use_ranker else 0
            if slots and not float(np.mean(self._log_plays[ctx.rows] > 0)) < self.info.get("cold_gate", 1.01):
                slots = 0  # the context is mostly played tracks: no place kept for never-played ones
            cold = self._log_plays[cand.rows] == 0 if slots else None
            todo.append((i, ctx, cand, blend, min(k, len(cand.rows)), slots, cold))
        # ties (a small tree ensemble has few distinct outputs) are broken by the blend, then by row
        if use_ranker:
            keep = self.config.ranker.cut_keep
            ranked = self.ranker.rank_many([
                RankQuery(self.features(ctx, cand), blend, cand.rows, max(keep, 4 * kq), cold, slots)
                for _, ctx, cand, blend, kq, slots, cold in todo])
        else:
            ranked = [(np.lexsort((cand.rows, -blend)), blend) for _, _, cand, blend, *_ in todo]
        for (i, ctx, cand, _, kq, slots, cold), (order, score) in zip(todo, ranked):
            top = with_cold(order, cold, kq, slots) if slots else order[:kq]
            why = self._reasons(ctx, cand, top, use_ranker, wmap, pop_w) if reasons else None
            out[i] = Ranked(cand.rows[top], score[top].astype(np.float64), why)
        return out

    def _reasons(self, ctx: Context, cand: Candidates, top: np.ndarray, use_ranker: bool,
                 wmap: dict[str, float], pop_w: float) -> list[list[str]]:
        """Each shown row's explanations by the sources that proposed it, most weighty first: the
        source's share of the ranker's gain x how close it is to its best here (or its blend term)."""
        gain = self._source_gain() if use_ranker else {}
        items: list[list[tuple[float, str]]] = [[] for _ in range(len(top))]
        for s, src in self.sources.items():
            shown = np.flatnonzero(~np.isnan(cand.ranks[s][top]))
            if not len(shown):
                continue
            texts = src.explain_many(ctx, cand.rows[top[shown]])
            best = cand.best.get(s, 0)
            for j, text, v in zip(shown.tolist(), texts, cand.scores[s][top[shown]].tolist()):
                if text:
                    if use_ranker:
                        w = gain.get(s, 0.0) * (1.0 + (v / cand.best[s] if best > 0 else 0.0))
                    else:
                        w = (wmap[s] if s != "popular" else pop_w) * v
                    items[j].append((w, text))
        for it in items:
            it.sort(key=lambda x: -x[0])
        return [[t for _, t in it] for it in items]

    # ------------------------------------------------------------------ training data
    def training_table(self, queries: list[tuple[np.ndarray, int]]):
        """Features, labels and group sizes for (context rows, target row) queries; targets outside the
        candidates drop their query. Returns (X, y, groups, candidate recall, mean candidates)."""
        Xs, ys, groups, found, sizes = [], [], [], 0, []
        for seq, target in queries:
            ctx = self.context(seq)
            cand = self.candidates(ctx)
            sizes.append(len(cand.rows))
            pos = np.searchsorted(cand.rows, target)
            if pos >= len(cand.rows) or cand.rows[pos] != target:
                continue
            found += 1
            y = np.zeros(len(cand.rows), np.float32)
            y[pos] = 1
            Xs.append(self.features(ctx, cand))
            ys.append(y)
            groups.append(len(y))
        if not Xs:
            return None, None, np.zeros(0, int), 0.0, float(np.mean(sizes)) if sizes else 0.0
        return (np.vstack(Xs), np.concatenate(ys), np.asarray(groups), found / max(len(queries), 1),
                float(np.mean(sizes)))

    # ------------------------------------------------------------------ persistence
    def save(self, directory) -> None:
        """Every source's files, ``ranker.txt`` (LightGBM text) and ``recommender.json``."""
        from .io import write_json

        for src in self.sources.values():
            src.save(directory)
        if self.ranker is not None:
            self.ranker.save(directory)
        tuned = {name: {f: getattr(src.settings, f) for f in type(src).grid}
                 for name, src in self.sources.items()
                 if name in self.info.get("tuning", {}).get("sources", {})}
        write_json(Path(directory) / META_FILE, {"version": META_VERSION, "sources": list(self.sources),
                                                 "mode": self.mode, "features": self._names,
                                                 "tuned": tuned, "info": self.info})

    @classmethod
    def load(cls, directory, data: SourceData, config: RecommendConfig | None = None) -> HybridRecommender:
        from .io import read_json

        d = Path(directory)
        meta = read_json(d / META_FILE, what="recommender description", error=IndexFormatError)
        if not isinstance(meta, dict) or meta.get("version") != META_VERSION:
            raise IndexFormatError(f"{d / META_FILE}: unsupported recommender description; rebuild the index")
        unknown = [s for s in meta["sources"] if s not in SOURCES]
        if unknown:
            raise IndexFormatError(f"{d / META_FILE}: unknown source(s) {', '.join(unknown)}; "
                                   "rebuild the index")
        config = config or RecommendConfig()
        for name, values in (meta.get("tuned") or {}).items():  # the settings the build's tuning chose
            if name in SOURCES and isinstance(values, dict):
                config = with_settings(config, name, **values)
        sources = {s: SOURCES[s].load(d, data, config) for s in meta["sources"]}
        ranker = Ranker.load(d, config) if meta.get("mode") == "lightgbm" else None
        self = cls(config, sources, data, ranker, meta.get("info"))
        if ranker is not None and ranker.names_ != self._names:
            raise IndexFormatError(f"{d / RANKER_FILE}: features do not match the sources; rebuild the index")
        return self

    def grow(self, data: SourceData) -> None:
        """The catalogue gained rows: every source follows (new tracks are cold)."""
        self.data = data
        for src in self.sources.values():
            src.grow(data)
        self._prepare()


# ---------------------------------------------------------------------------------------------- training
def fit_sources(data: SourceData, config: RecommendConfig,
                names: Sequence[str] | None = None) -> dict[str, Source]:
    """Fit the named sources (default: every source the data supports) on ``data``."""
    has_h = data.interactions is not None and len(data.interactions.items) > 0
    names = list(names) if names is not None else [
        s for s, cls in SOURCES.items() if has_h or not cls.needs_histories]
    out = {}
    for name in names:
        src = make_source(name, config)
        if src.needs_histories and not has_h:
            continue
        t0 = time.perf_counter()
        out[name] = src.fit(data)
        log.info("source %s fitted in %.2f s", name, time.perf_counter() - t0)
    return out


def fold_queries(inter: Interactions, users: np.ndarray, config: RecommendConfig, rng: np.random.Generator,
                 *, per_user: int) -> list[tuple[int, np.ndarray, int, bool]]:
    """[(user, context rows, target, is last)]: per user its last play and up to ``per_user - 1`` random
    earlier cut points (:func:`sources.tune.cut_queries` with the config's context length)."""
    return cut_queries(inter, users, rng, per_user=per_user, max_context=config.max_context)


def choose_mode(data: SourceData, config: RecommendConfig) -> tuple[str, str]:
    """('lightgbm' | 'blend', why) from the config and how many users have histories."""
    inter = data.interactions
    n_users = int((np.diff(inter.starts()) >= 2).sum()) if inter is not None else 0
    if config.ranker.mode not in ("auto", "lightgbm", "blend"):
        raise InputError(f"recommend.ranker.mode must be auto, lightgbm or blend, not {config.ranker.mode!r}")
    if config.ranker.mode == "blend":
        return "blend", "blend asked for in the config"
    if inter is None:
        return "blend", "no histories"
    if n_users < 2:
        return "blend", f"{n_users} user(s) with 2+ plays: nothing to learn a ranking from"
    if config.ranker.mode == "auto" and n_users < config.ranker.min_users:
        return "blend", f"{n_users} users with 2+ plays < ranker.min_users {config.ranker.min_users}"
    return "lightgbm", f"{n_users} users with 2+ plays"


def fit_hybrid(data: SourceData, config: RecommendConfig | None = None, *,
               sources: Sequence[str] | None = None) -> HybridRecommender:
    """Tune and fit every source on ``data`` and, with enough histories, train the ranker on users the
    sources did not see (k-fold by user: every source, rules included, is refitted on each fold's
    training part, so the held-out users reach none of them)."""
    from .sources.tune import pick_users, tune_sources

    config = config or RecommendConfig()
    rng = np.random.default_rng(config.seed)
    info: dict = {}
    inter = data.interactions
    has_h = inter is not None and len(inter.items) > 0
    n_users = int((np.diff(inter.starts()) >= 2).sum()) if has_h else 0
    tune_users = np.zeros(0, np.int64)
    if has_h and config.tune_seconds > 0 and n_users >= config.tune_min_users:
        t0 = time.perf_counter()
        tune_users = pick_users(inter, config.tune_validation, rng)
        names = list(sources) if sources is not None else list(SOURCES)
        config, info["tuning"] = tune_sources(data, config, [n for n in names if n in SOURCES],
                                              val_users=tune_users, seed=config.seed)
        info["tuning"]["seconds"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    fitted = fit_sources(data, config, sources)
    info["sources_seconds"] = round(time.perf_counter() - t0, 3)
    mode, why = choose_mode(data, config)
    ranker = None
    if mode == "lightgbm":
        t1 = time.perf_counter()
        ranker, rinfo = train_ranker(data, config, list(fitted), avoid=tune_users, rng=rng)
        info.update(rinfo)
        info["ranker_seconds"] = round(time.perf_counter() - t1, 3)
        if ranker is None:
            mode, why = ("source", rinfo["why"]) if rinfo.get("serve") else (
                "blend", rinfo.get("fallback", "ranker could not be trained"))
    info.update({"mode": mode, "why": why})
    log.info("recommender: %s (%s)", mode, why)
    return HybridRecommender(config, fitted, data, ranker, info)


def _hits(ranked_rows: list[np.ndarray], targets: list[int], k: int = 10) -> tuple[float, float]:
    hits = rr = 0.0
    for rows, t in zip(ranked_rows, targets):
        pos = np.flatnonzero(np.asarray(rows)[:k] == t)
        if len(pos):
            hits += 1
            rr += 1.0 / (pos[0] + 1)
    n = max(len(targets), 1)
    return float(hits / n), float(rr / n)


def train_ranker(data: SourceData, config: RecommendConfig, names: list[str], *,
                 avoid: np.ndarray | None = None,
                 rng: np.random.Generator | None = None) -> tuple[Ranker | None, dict]:
    """LightGBM lambdarank on queries of users the sources did not see.

    Users with 2+ plays fall into ``ranker.folds`` folds; per fold the sources are fitted on every other
    user's plays and the fold's users give queries (their last play and random earlier cut points).
    A share of the users (never one of ``avoid``, the sources' tuning users) is held out: half for early
    stopping, half for the guard, which compares the ranker's HitRate@10 on their last plays with every
    source alone and serves the best source instead when the ranker does not beat it.
    """
    rng = rng or np.random.default_rng(config.seed)
    inter = data.interactions
    lens = np.diff(inter.starts())
    users = np.flatnonzero(lens >= 2)
    n_val = int(round(config.ranker.validation * len(users))) if len(users) >= 20 else 0
    pool = np.setdiff1d(users, avoid) if avoid is not None and len(avoid) else users
    val = rng.choice(pool, min(n_val, len(pool)), replace=False) if n_val else np.zeros(0, np.int64)
    stop_users, guard_users = set(val[: len(val) // 2].tolist()), set(val[len(val) // 2:].tolist())
    per_user = max(1, min(config.ranker.queries_per_user, config.ranker.max_queries // max(len(users), 1)))
    folds = rng.permutation(len(users)) % max(2, config.ranker.folds)
    parts = {"fit": [], "stop": [], "guard": []}
    guard: dict[str, list] = {s: [] for s in (*names, "ranker", "targets")}
    keep_guard = min(1.0, config.ranker.guard_queries / max(len(guard_users) * per_user, 1))
    recall_found = recall_n = 0
    sizes = []
    tmp = None
    cont: dict[str, list] = {"fit": [], "stop": [], "guard": []}
    crng = np.random.default_rng([config.seed, 1])  # its own draws: the next-track ranker stays as without it
    for f in range(max(2, config.ranker.folds)):
        fold_users = users[folds == f]
        inner_inter = inter.subset(~np.isin(inter.users, fold_users))
        inner = SourceData(data.content, inner_inter)
        inner_sources = fit_sources(inner, config, names)
        # the ranker sees the same feature columns as the final recommender: a missing source stays empty
        tmp = HybridRecommender(config, {s: inner_sources.get(s, _Empty()) for s in names}, inner)
        for u, ctx_rows, target, _ in fold_queries(inter, fold_users, config, rng, per_user=per_user):
            part = "stop" if u in stop_users else "guard" if u in guard_users else "fit"
            ctx = tmp.context(ctx_rows)
            cand = tmp.candidates(ctx)
            sizes.append(len(cand.rows))
            pos = np.searchsorted(cand.rows, target)
            found = pos < len(cand.rows) and cand.rows[pos] == target
            recall_n += 1
            recall_found += int(found)
            if part == "guard":
                if rng.random() < keep_guard:  # ranked whole, as when serving
                    guard["targets"].append((target, bool(inner.popularity[target] == 0)))
                    for s in names:
                        guard[s].append(tmp.sources[s].candidates(ctx, 10)[0])
                    F = tmp.features(ctx, cand)
                    guard["ranker"].append((cand.rows, F, tmp._log_plays[cand.rows] == 0,
                                            float(np.mean(tmp._log_plays[ctx.rows] > 0))))
            elif found:
                parts[part].append(_training_group(tmp, ctx, cand, int(pos), config, rng))
        if config.ranker.continuation:
            _continuation_queries(tmp, inter, fold_users, config, crng, cont,
                                  lambda u: "stop" if u in stop_users else "guard" if u in guard_users
                                  else "fit")
    info = {"folds": max(2, config.ranker.folds), "queries_per_user": per_user,
            "queries": sum(len(p) for p in parts.values()), "train_candidate_recall":
            round(recall_found / max(recall_n, 1), 4), "mean_candidates": round(float(np.mean(sizes)), 1)
            if sizes else 0.0}
    if len(parts["fit"]) < 2:
        info["fallback"] = f"targets were among the candidates for only {len(parts['fit'])} training queries"
        return None, info
    X, y, g = _stack(parts["fit"])
    Xv, yv, gv = _stack(parts["stop"]) if parts["stop"] else (None, None, np.zeros(0, int))
    ranker = Ranker(config).fit(X, y, g, names=tmp._names, X_val=Xv, y_val=yv, groups_val=gv)
    info.update({"training_queries": len(g), "rows": len(y), "best_iteration": ranker.best_iteration_,
                 "valid_ndcg@10": ranker.valid_ndcg_})
    if cont["fit"]:
        ranker.continuation_, info["continuation"] = _continuation_ranker(ranker, cont, config)
    if guard["targets"]:
        return _guard(ranker, names, guard, config, info)
    return ranker, info


def _continuation_queries(rec: HybridRecommender, inter: Interactions, users: np.ndarray,
                          config: RecommendConfig, rng: np.random.Generator, out: dict, part_of) -> None:
    """Continuation queries of users with enough plays: seed = their first 5-25 plays (weighted alike, as a
    playlist seed is a set; ``continuation_per_user`` lengths, one for a guard user), positives = the later
    tracks among the candidates, plus ``negatives`` sampled from the other candidates."""
    from .playlist import with_decay

    rec = with_decay(rec, 1.0)
    starts = inter.starts()
    for u in np.asarray(users).tolist():
        a, n = int(starts[u]), int(starts[u + 1] - starts[u])
        if n < max(config.ranker.continuation_min_plays, 10):
            continue
        part = part_of(u)
        lengths = np.arange(5, min(25, n - 5) + 1)
        per = 1 if part == "guard" else min(config.ranker.continuation_per_user, len(lengths))
        for s in sorted(rng.choice(lengths, per, replace=False).tolist()):
            seed = inter.items[a:a + s]
            truth = np.setdiff1d(inter.items[a + s:a + n], seed)
            if not len(truth):
                continue
            ctx = rec.context(seed)
            cand = rec.candidates(ctx)
            hit = np.isin(cand.rows, truth)
            if part == "guard":  # ranked whole, as when serving: recall@50 of the two rankers
                out["guard"].append((cand.rows, rec.features(ctx, cand), rec.blend_scores(cand), truth))
                continue
            if not hit.any():
                continue
            pos, neg = np.flatnonzero(hit), np.flatnonzero(~hit)
            if len(neg) > config.ranker.negatives:
                neg = rng.choice(neg, config.ranker.negatives, replace=False)
            keep = np.sort(np.r_[pos, neg])
            out[part].append((rec.features(ctx, cand.take(keep)), hit[keep].astype(np.float32)))


def within_noise(a: np.ndarray, b: np.ndarray, n_se: float) -> tuple[bool, float]:
    """(whether ``a`` is not worse than ``b`` by more than ``n_se`` standard errors of their paired
    per-query difference, that standard error); ``n_se`` 0: a must be better; under 2 queries: False."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if len(diff) < 2:
        return False, float("nan")
    se = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    return bool(diff.mean() > -n_se * se), se


def _continuation_ranker(nexttrack: Ranker, cont: dict,
                         config: RecommendConfig) -> tuple[Ranker | None, dict]:
    """The continuation ranker, kept (with ``ranker.guard``) unless the next-track ranker's recall@50 on the
    guard users' playlists is higher by more than ``ranker.continuation_se`` standard errors of the paired
    per-playlist difference (both rank the same candidates, seeds weighted alike)."""
    X, y, g = _stack(cont["fit"])
    Xv, yv, gv = _stack(cont["stop"]) if cont["stop"] else (None, None, np.zeros(0, int))
    if len(g) < 20 or y.sum() < 2:
        return None, {"why": f"{len(g)} continuation queries: too few"}
    ranker = Ranker(config).fit(X, y, g, names=nexttrack.names_, X_val=Xv, y_val=yv, groups_val=gv)
    info = {"queries": len(g), "rows": len(y), "best_iteration": ranker.best_iteration_}

    def recalls(r: Ranker) -> np.ndarray:
        keep = max(config.ranker.cut_keep, 200)
        return np.array([np.isin(rows[r.rank(F, blend, rows, keep)[0][:50]], truth).sum()
                         / min(len(truth), 50) for rows, F, blend, truth in cont["guard"]])

    a, b = recalls(ranker), recalls(nexttrack)
    keep, se = within_noise(a, b, config.ranker.continuation_se)
    info["guard_recall@50"] = {
        "continuation": round(float(a.mean()), 4) if len(a) else float("nan"),
        "next-track": round(float(b.mean()), 4) if len(b) else float("nan"),
        "paired_se": round(se, 4), "playlists": len(cont["guard"])}
    if config.ranker.guard and not keep:
        info["why"] = (f"{len(a)} guard playlist(s): too few to compare, not kept" if len(a) < 2 else
                       f"recall@50 {config.ranker.continuation_se:g}+ standard errors below the next-track "
                       "ranker's on the guard playlists: not kept")
        return None, info
    return ranker, info


class _Empty(Source):
    """A source that proposes nothing (stands in for one that could not be fitted on a fold)."""

    name = "empty"

    def candidates(self, ctx: Context, n: int):
        return np.zeros(0, np.int64), np.zeros(0)


def _training_group(rec: HybridRecommender, ctx: Context, cand: Candidates, pos: int,
                    config: RecommendConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of one query: the target and ``ranker.negatives`` negatives drawn uniformly
    from the candidate union (so hard ones come in the proportion serving meets them; choosing them by a
    feature would teach the ranker that feature's opposite)."""
    n = len(cand.rows)
    if n > config.ranker.negatives + 1:
        others = np.delete(np.arange(n), pos)
        keep = np.sort(np.r_[pos, rng.choice(others, config.ranker.negatives, replace=False)])
        pos = int(np.searchsorted(keep, pos))
        cand = cand.take(keep)
    y = np.zeros(len(cand.rows), np.float32)
    y[pos] = 1
    return rec.features(ctx, cand), y


def _stack(groups: list[tuple[np.ndarray, np.ndarray]]):
    return (np.vstack([x for x, _ in groups]), np.concatenate([y for _, y in groups]),
            np.asarray([len(y) for _, y in groups]))


def _guard(ranker: Ranker, names: list[str], guard: dict, config: RecommendConfig,
           info: dict) -> tuple[Ranker | None, dict]:
    """Ranker vs every source alone on the guard users' queries, and the cold-slot policy they support:
    ``slots`` places of the top 10 for never-played tracks when the share of the context's tracks that were
    played in training is below ``gate`` (a context of unplayed tracks is a sign of an unplayed next one).
    The policy: the most cold-target hits among those within ``ranker.cold_se`` standard errors of the
    best HR@10 (0: the best HR@10 alone)."""
    targets = [t for t, _ in guard["targets"]]
    cold_t = np.asarray([c for _, c in guard["targets"]])
    scored = [(rows, np.lexsort((rows, -ranker.predict(F))), cold, known)
              for rows, F, cold, known in guard["ranker"]]

    def ranked(slots: int, gate: float) -> list[np.ndarray]:
        return [rows[with_cold(order, cold, 10, slots) if slots and known < gate else order[:10]]
                for rows, order, cold, known in scored]

    cold_idx = np.flatnonzero(cold_t)

    def cold_hr(lists: list[np.ndarray]) -> float:
        return float(np.mean([targets[i] in lists[i] for i in cold_idx])) if len(cold_idx) else 0.0

    policies = [(0, 0.0)] + [(slots, gate) for slots in range(1, config.ranker.max_cold_slots + 1)
                             for gate in (0.5, 0.8, 0.9, 1.0, 1.01)]
    got = {p: ranked(*p) for p in policies}
    hits = {p: _hits(got[p], targets) for p in policies}
    top = max(v[0] for v in hits.values())
    # the best HR@10, or (cold_se > 0) the policy that reaches most cold targets among those within
    # cold_se standard errors of it: a loss the guard queries cannot tell from noise buys new tracks
    tol = config.ranker.cold_se * float(np.sqrt(top * (1 - top) / max(len(targets), 1)))
    near = [p for p in policies if hits[p][0] >= top - tol - 1e-12]
    policy = max(near, key=lambda p: (cold_hr(got[p]) if tol > 0 else 0.0, hits[p][0], -policies.index(p)))
    hr = {s: _hits(guard[s], targets) for s in names}
    hr["ranker"] = hits[policy]
    final = got[policy]
    info.update({"guard_queries": len(targets), "guard_cold_targets": int(cold_t.sum()),
                 "guard_hr@10": {s: round(v[0], 4) for s, v in hr.items()},
                 "cold_slots": policy[0], "cold_gate": policy[1], "guard_best_hr@10": round(top, 4),
                 "cold_tolerance": round(tol, 4),
                 "guard_cold_hr@10": round(float(np.mean([targets[i] in final[i] for i in cold_idx])), 4)
                 if len(cold_idx) else None})
    best_src = max(names, key=lambda s: hr[s])
    if config.ranker.guard and hr["ranker"] <= hr[best_src]:
        info.update({"serve": best_src,
                     "why": f"the ranker (HR@10 {hr['ranker'][0]:.4f}) did not beat {best_src} alone "
                            f"({hr[best_src][0]:.4f}) on {len(targets)} queries of held-out users: "
                            f"serving {best_src}"})
        return None, info
    return ranker, info


def describe(info: dict) -> str:
    """One line for build-index / evaluate: which recommender was chosen and why (and what was tuned)."""
    tuned = "; ".join(f"{name} " + ", ".join(f"{k}={v}" for k, v in rep.items()
                                             if k not in ("hr@10", "mrr@10", "tried", "seconds"))
                      for name, rep in info.get("tuning", {}).get("sources", {}).items())
    tuned = f"; tuned on {info['tuning']['validation_users']} held-out users: {tuned}" if tuned else ""
    if info.get("mode") == "lightgbm":
        guard = info.get("guard_hr@10", {})
        vs = ""
        if guard:
            best = max((s for s in guard if s != "ranker"), key=guard.get)
            vs = (f", guard HR@10 {guard['ranker']:.4f} vs {best} {guard[best]:.4f} on "
                  f"{info['guard_queries']} queries of held-out users, "
                  f"{info.get('cold_slots', 0)} cold slot(s)")
        return (f"LightGBM ranker ({info.get('why')}; {info.get('queries', 0):,} queries from users the "
                f"sources did not see ({info.get('folds')} folds), "
                f"candidate recall {info.get('train_candidate_recall', 0):.1%}, "
                f"{info.get('best_iteration')} trees{vs}, trained in {info.get('ranker_seconds', 0):.1f} s"
                f"{tuned})")
    if info.get("mode") == "source":
        return f"{info.get('serve')} alone ({info.get('why')}{tuned})"
    return f"fixed blend ({info.get('why')}{tuned})"
