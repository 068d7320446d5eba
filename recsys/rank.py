"""Second stage: a LightGBM lambdarank ranker over the candidates of every source, or the fallback blend.

:class:`HybridRecommender` asks each source for candidates, describes every (context, candidate)
pair with features (each source's score and rank, popularity, cold flag, cosine to the last track
and to the profile, audio-statistic differences, same artist/album share, context length) and
orders them with the ranker. The ranker is trained at build time on the user's own histories
(:func:`fit_hybrid`): per query user a target play is held out (the last one, or a random one)
with everything after it, the sources are fitted on what remains, and the ranker learns to put
the target first among their candidates; a share of the users is kept for early stopping.
With fewer than ``min_ranker_users`` users (or no histories) the fixed blend of
:class:`~recsys.recommend.RecommendConfig` weights is used instead.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .errors import IndexFormatError, InputError
from .recommend import RecommendConfig
from .sources import BLEND_SOURCES, SOURCES, make_source
from .sources.base import (
    Context,
    Interactions,
    Ranked,
    Recommender,
    Source,
    SourceData,
    log_scaled,
)

log = logging.getLogger(__name__)

#: audio statistics kept per track for the ranker's "how well does it follow" features
AUDIO_STATS = ("tempo", "key", "mode", "energy", "valence", "danceability", "acousticness", "loudness")
#: blend weight field of each source (RecommendConfig)
BLEND_WEIGHT = {"rules": "w_rules", "content": "w_neighbours", "cluster": "w_cluster", "artist": "w_artist",
                "album": "w_album", "itemknn": "w_itemknn", "sequence": "w_sequence", "vsknn": "w_vsknn",
                "als": "w_als"}
CONTEXT_FEATURES = ("log_plays", "catalog_popularity", "cold", "cos_last", "cos_profile", "same_cluster_last",
                    "artist_share", "album_share", "n_sources", "context_len", "tempo_log_ratio",
                    "fifths_distance", "same_mode", "energy_delta", "valence_delta", "danceability_delta",
                    "acousticness_delta", "loudness_delta", "energy_delta_profile")
RANKER_FILE = "ranker.txt"
META_FILE = "recommender.json"
META_VERSION = 1


def audio_stats(catalog) -> np.ndarray | None:
    """(n, len(AUDIO_STATS)) float32 of the catalogue's audio statistics (NaN when missing); None if none."""
    import pandas as pd

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
    return [f"{s}_{what}" for s in sources for what in ("score", "rank")] + list(CONTEXT_FEATURES)


@dataclasses.dataclass
class Candidates:
    """The candidate union of one query with each source's scores and ranks (NaN: not proposed)."""

    rows: np.ndarray  # sorted unique rows
    scores: dict[str, np.ndarray]  # per source, 0 where not proposed
    ranks: dict[str, np.ndarray]  # per source, NaN where not proposed


class Ranker:
    """LightGBM lambdarank over (context, candidate) features; saved as LightGBM text."""

    def __init__(self, config: RecommendConfig | None = None) -> None:
        self.config = config or RecommendConfig()

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray, *, names: list[str],
            X_val=None, y_val=None, groups_val=None) -> Ranker:
        """Train on query groups (sizes ``groups``); early-stops on the validation groups when given."""
        import lightgbm as lgb

        c = self.config
        params = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [10],
                  "learning_rate": c.ranker_learning_rate, "num_leaves": c.ranker_leaves,
                  "min_data_in_leaf": c.ranker_min_leaf, "feature_fraction": 0.8,
                  "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0, "seed": c.seed,
                  "deterministic": True, "force_row_wise": True, "num_threads": 2, "verbose": -1}
        train = lgb.Dataset(X, y, group=groups, feature_name=names, free_raw_data=True)
        valid, callbacks = [], []
        if X_val is not None and len(groups_val):
            valid = [lgb.Dataset(X_val, y_val, group=groups_val, reference=train)]
            callbacks = [lgb.early_stopping(c.ranker_early_stop, verbose=False)]
        self.booster_ = lgb.train(params, train, num_boost_round=c.ranker_rounds, valid_sets=valid,
                                  callbacks=callbacks)
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        self.names_ = list(names)
        score = self.booster_.best_score.get("valid_0", {}) if valid else {}
        self.valid_ndcg_ = float(score.get("ndcg@10", np.nan)) if score else None
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.booster_.predict(X, num_iteration=self.best_iteration_, num_threads=1)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contributions (SHAP values from LightGBM ``pred_contrib``), bias column dropped."""
        return self.booster_.predict(X, num_iteration=self.best_iteration_, pred_contrib=True,
                                     num_threads=1)[:, :-1]

    def save(self, directory) -> None:
        from .io import write_text

        write_text(Path(directory) / RANKER_FILE,
                   self.booster_.model_to_string(num_iteration=self.best_iteration_))

    @classmethod
    def load(cls, directory, config: RecommendConfig | None = None) -> Ranker:
        """Read ``ranker.txt`` back (a cut or damaged file is an IndexFormatError)."""
        from .io import read_lightgbm

        self = cls(config)
        self.booster_ = read_lightgbm(Path(directory) / RANKER_FILE, error=IndexFormatError)
        self.best_iteration_ = self.booster_.current_iteration()
        self.names_ = self.booster_.feature_name()
        self.valid_ndcg_ = None
        return self


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
        return "lightgbm" if self.ranker is not None else "blend"

    def _prepare(self) -> None:
        d = self.data
        pop = np.asarray(d.popularity, dtype=np.float64)
        self._log_plays = np.log1p(pop).astype(np.float32)
        self._pop_score = log_scaled(pop)
        cp = d.content.catalog_popularity
        self._catpop = (np.full(len(pop), np.nan, np.float32) if cp is None
                        else (np.asarray(cp, dtype=np.float32) / 100.0))
        self._names = feature_names(list(self.sources))

    def budget(self, name: str, *, ranked: bool) -> int:
        """Candidates asked of a source: the collaborative ones are capped, the blend sources keep (nearly)
        all of theirs; ``n_rank_candidates`` > 0 caps every source for the ranker (faster, lower recall)."""
        if ranked and self.config.n_rank_candidates > 0:
            return self.config.n_rank_candidates
        return self.config.n_candidates if name not in BLEND_SOURCES else 10 * self.config.n_candidates

    def candidates(self, ctx: Context, names: Sequence[str] | None = None) -> Candidates:
        """The union of every (or the named) source's candidates with their scores and ranks."""
        got = {}
        for name in (names or self.sources):
            rows, scores = self.sources[name].candidates(ctx, self.budget(name, ranked=names is None))
            if len(rows):
                got[name] = (rows, scores)
        allr = np.unique(np.concatenate([r for r, _ in got.values()])) if got else np.zeros(0, np.int64)
        scores, ranks = {}, {}
        for name in self.sources:
            s = np.zeros(len(allr))
            rk = np.full(len(allr), np.nan)
            if name in got:
                rows, sc = got[name]
                pos = np.searchsorted(allr, rows)
                s[pos] = sc
                rk[pos] = np.arange(1, len(rows) + 1)
            scores[name], ranks[name] = s, rk
        return Candidates(allr, scores, ranks)

    def features(self, ctx: Context, cand: Candidates) -> np.ndarray:
        """(n candidates, n features) float32 in ``feature_names(self.sources)`` order."""
        rows = cand.rows
        n = len(rows)
        cols = []
        for name in self.sources:
            cols += [cand.scores[name], cand.ranks[name]]
        content = self.data.content
        E = content.embeddings
        recent, w = ctx.recent(self.config.max_recent)
        last = int(recent[0])
        Ec = E[rows]
        prof = (E[recent] * w[:, None].astype(np.float32)).sum(0)
        prof /= max(float(np.linalg.norm(prof)), 1e-9)
        cl = content.clusters
        shares = []
        for key in ("artist", "album"):
            codes = content.meta.get(key)
            if codes is None:
                shares.append(np.full(n, np.nan))
                continue
            rc, cc = codes[recent], codes[rows]
            match = (cc[:, None] == rc[None, :]) & (rc[None, :] >= 0)
            shares.append((match * w[None, :]).sum(1) / w.sum())
        n_src = (sum((~np.isnan(cand.ranks[s])).astype(np.float64) for s in self.sources) if self.sources
                 else np.zeros(n))
        cols += [self._log_plays[rows], self._catpop[rows], (self._log_plays[rows] == 0).astype(np.float32),
                 Ec @ E[last], Ec @ prof, (cl[rows] == cl[last]).astype(np.float32), shares[0], shares[1],
                 n_src, np.full(n, float(len(ctx.seq)))]
        S = content.stats
        if S is None:
            cols += [np.full(n, np.nan)] * 9
        else:
            i = {k: AUDIO_STATS.index(k) for k in AUDIO_STATS}
            sc, sl = S[rows], S[last]
            with np.errstate(divide="ignore", invalid="ignore"):
                tempo = np.abs(np.log(sc[:, i["tempo"]] / sl[i["tempo"]]))
            fc = _fifths(sc[:, i["key"]], sc[:, i["mode"]])
            fl = _fifths(sl[i["key"]], sl[i["mode"]])
            d = np.abs(fc - fl)
            cols += [np.where(np.isfinite(tempo), tempo, np.nan), np.minimum(d, 12 - d),
                     (sc[:, i["mode"]] == sl[i["mode"]]).astype(np.float32)]
            cols += [np.abs(sc[:, i[k]] - sl[i[k]])
                     for k in ("energy", "valence", "danceability", "acousticness", "loudness")]
            cols.append(np.abs(sc[:, i["energy"]] - np.nanmean(S[recent, i["energy"]]) if np.isfinite(
                S[recent, i["energy"]]).any() else np.full(n, np.nan)))
        return np.column_stack(cols).astype(np.float32) if n else np.zeros((0, len(self._names)), np.float32)

    def blend_scores(self, cand: Candidates, config: RecommendConfig) -> np.ndarray:
        """The fixed blend: sum of weight x source score, plus a little popularity."""
        score = config.w_popularity * self._pop_score[cand.rows]
        for name, field in BLEND_WEIGHT.items():
            wt = getattr(config, field)
            if wt and name in cand.scores:
                score = score + wt * cand.scores[name]
        return score

    def recommend(self, recent: Sequence[int], k: int = 10, *, exclude=None, reasons: bool = False,
                  weights: dict[str, float] | None = None, mode: str | None = None) -> Ranked:
        """Top-k rows after ``recent``. ``weights`` (RecommendConfig blend fields) or ``mode="blend"``
        use the blend for this call; by default the ranker when there is one."""
        ctx = self.context(recent, exclude)
        cfg = self.config
        if weights:
            unknown = [key for key in weights
                       if key not in {f.name for f in dataclasses.fields(RecommendConfig)}]
            if unknown:
                raise InputError(f"unknown recommend weight(s) {', '.join(unknown)}")
            cfg = dataclasses.replace(cfg, **weights)
        use_ranker = self.ranker is not None and not weights and mode != "blend"
        if use_ranker:
            cand = self.candidates(ctx)
        else:
            names = [s for s in self.sources if s in BLEND_WEIGHT and getattr(cfg, BLEND_WEIGHT[s])]
            cand = self.candidates(ctx, names)
        if not len(cand.rows):
            return Ranked(np.zeros(0, np.int64), np.zeros(0), [] if reasons else None)
        F = self.features(ctx, cand) if use_ranker else None
        blend = self.blend_scores(cand, cfg)
        score = self.ranker.predict(F) if use_ranker else blend
        k = min(k, len(cand.rows))
        # ties (a small tree ensemble has few distinct outputs) are broken by the blend, then by row
        top = np.lexsort((cand.rows, -blend, -score))[:k]
        rows, scores = cand.rows[top], score[top]
        why = None
        if reasons:
            if use_ranker:
                C = self.ranker.contributions(F[top])
                col = {s: i for i, s in enumerate(self.sources)}
                weight_of = lambda j, s: float(C[j, 2 * col[s]] + C[j, 2 * col[s] + 1])
            else:
                weight_of = lambda j, s: float(getattr(cfg, BLEND_WEIGHT.get(s, "w_popularity"), 0.0)
                                               * cand.scores[s][top[j]])
            why = []
            for j, r in enumerate(rows.tolist()):
                items = []
                for s, src in self.sources.items():
                    if not np.isnan(cand.ranks[s][top[j]]):
                        text = src.explain(ctx, r)
                        if text:
                            items.append((weight_of(j, s), text))
                items.sort(key=lambda x: -x[0])
                why.append([t for _, t in items])
        return Ranked(rows, scores.astype(np.float64), why)

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
        write_json(Path(directory) / META_FILE, {"version": META_VERSION, "sources": list(self.sources),
                                                 "mode": self.mode, "features": self._names,
                                                 "info": self.info})

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
        if name == "rules" and data.rules is None:
            continue
        t0 = time.perf_counter()
        out[name] = src.fit(data)
        log.info("source %s fitted in %.2f s", name, time.perf_counter() - t0)
    return out


def training_queries(inter: Interactions, config: RecommendConfig, rng: np.random.Generator,
                     ) -> tuple[np.ndarray, list[tuple[int, np.ndarray, int]]]:
    """Held-out targets for the ranker: (plays kept for fitting the sources, [(user, context rows, target)]).

    Per sampled user with 2+ plays a cut is chosen: the last play (share ``ranker_last_share``) or a
    random later one. The cut play and every play after it leave the sources' training data; up to
    ``ranker_queries_per_user`` of them (the cut, the last play, random ones between) become targets,
    each with the plays before it as context. So no target ever reaches the sources.
    """
    starts = inter.starts()
    lens = np.diff(starts)
    users = np.flatnonzero(lens >= 2)
    per_user = max(1, config.ranker_queries_per_user)
    max_users = max(1, config.ranker_max_queries // per_user)
    if len(users) > max_users:
        users = np.sort(rng.choice(users, max_users, replace=False))
    keep = np.ones(len(inter.items), dtype=bool)
    queries = []
    for u in users.tolist():
        s, n = int(starts[u]), int(lens[u])
        t = n - 1 if (n < 3 or rng.random() < config.ranker_last_share) else int(rng.integers(1, n - 1))
        keep[s + t:s + n] = False
        pos = {t, n - 1}
        between = np.arange(t + 1, n - 1)
        if len(between) and per_user > 2:
            pos |= set(rng.choice(between, min(per_user - 2, len(between)), replace=False).tolist())
        for j in sorted(pos)[:per_user]:
            ctx = inter.items[s:s + j][-config.max_context:]
            target = int(inter.items[s + j])
            if target in set(ctx.tolist()):
                continue  # a repeat of a context track: never recommended, not a ranking example
            queries.append((u, ctx, target))
    return keep, queries


def choose_mode(data: SourceData, config: RecommendConfig) -> tuple[str, str]:
    """('lightgbm' | 'blend', why) from the config and how many users have histories."""
    inter = data.interactions
    n_users = int((np.diff(inter.starts()) >= 2).sum()) if inter is not None else 0
    if config.ranker not in ("auto", "lightgbm", "blend"):
        raise InputError(f"recommend.ranker must be auto, lightgbm or blend, not {config.ranker!r}")
    if config.ranker == "blend":
        return "blend", "blend asked for in the config"
    if inter is None:
        return "blend", "no histories"
    if n_users < 2:
        return "blend", f"{n_users} user(s) with 2+ plays: nothing to learn a ranking from"
    if config.ranker == "auto" and n_users < config.min_ranker_users:
        return "blend", f"{n_users} users with 2+ plays < min_ranker_users {config.min_ranker_users}"
    return "lightgbm", f"{n_users} users with 2+ plays"


def fit_hybrid(data: SourceData, config: RecommendConfig | None = None, *,
               mine: Callable[[Interactions], object] | None = None,
               sources: Sequence[str] | None = None) -> HybridRecommender:
    """Fit every source on ``data`` and, with enough histories, train the ranker without leakage.

    ``mine(interactions) -> RuleIndex | None`` re-mines the rules for the ranker's training part
    (the held-out targets must not reach them); without it the rules source is left out of training.
    """
    config = config or RecommendConfig()
    t0 = time.perf_counter()
    fitted = fit_sources(data, config, sources)
    info = {"sources_seconds": round(time.perf_counter() - t0, 3)}
    mode, why = choose_mode(data, config)
    ranker = None
    if mode == "lightgbm":
        t1 = time.perf_counter()
        ranker, rinfo = train_ranker(data, config, list(fitted), mine=mine)
        info.update(rinfo)
        info["ranker_seconds"] = round(time.perf_counter() - t1, 3)
        if ranker is None:
            mode, why = "blend", rinfo.get("fallback", "ranker could not be trained")
    info.update({"mode": mode, "why": why})
    log.info("recommender: %s (%s)", mode, why)
    return HybridRecommender(config, fitted, data, ranker, info)


def train_ranker(data: SourceData, config: RecommendConfig, names: list[str], *,
                 mine: Callable[[Interactions], object] | None = None) -> tuple[Ranker | None, dict]:
    """Hold out targets, fit the sources on the rest, train LightGBM lambdarank on their candidates."""
    rng = np.random.default_rng(config.seed)
    keep, queries = training_queries(data.interactions, config, rng)
    inner_inter = data.interactions.subset(keep)
    rules = mine(inner_inter) if (mine is not None and "rules" in names) else None
    inner = SourceData(data.content, inner_inter, rules)
    inner_names = [s for s in names if s != "rules" or rules is not None]
    inner_sources = fit_sources(inner, config, inner_names)
    # the ranker sees the same feature columns as the final recommender: a source missing here stays empty
    if list(inner_sources) != names:
        return None, {"fallback": f"source(s) {sorted(set(names) - set(inner_sources))} could not be fitted "
                                  "on the training part"}
    tmp = HybridRecommender(config, inner_sources, inner)
    # validation users are disjoint from training users (a user's queries are alike)
    qusers = np.unique([u for u, _, _ in queries])
    n_val = round(config.ranker_validation * len(qusers)) if len(qusers) >= 20 else 0
    val_users = set(rng.choice(qusers, n_val, replace=False).tolist()) if n_val else set()
    val_q = [(c, t) for u, c, t in queries if u in val_users]
    fit_q = [(c, t) for u, c, t in queries if u not in val_users]
    X, y, g, recall, mean_c = tmp.training_table(fit_q)
    info = {"queries": len(fit_q), "validation_queries": len(val_q),
            "train_candidate_recall": round(recall, 4), "mean_candidates": round(mean_c, 1)}
    if X is None or len(g) < 2:
        info["fallback"] = f"targets were among the candidates for only {len(g)} training queries"
        return None, info
    Xv = yv = None
    gv = np.zeros(0, int)
    if val_q:
        Xv, yv, gv, _, _ = tmp.training_table(val_q)
        if Xv is None:
            gv = np.zeros(0, int)
    ranker = Ranker(config).fit(X, y, g, names=tmp._names, X_val=Xv, y_val=yv, groups_val=gv)
    info.update({"positive_groups": len(g), "rows": len(y), "best_iteration": ranker.best_iteration_,
                 "valid_ndcg@10": ranker.valid_ndcg_})
    return ranker, info


def describe(info: dict) -> str:
    """One line for build-index / evaluate: which recommender was chosen and why."""
    if info.get("mode") == "lightgbm":
        return (f"LightGBM ranker ({info.get('why')}; {info.get('queries', 0):,} training queries, "
                f"candidate recall {info.get('train_candidate_recall', 0):.1%}, "
                f"{info.get('best_iteration')} trees, "
                f"trained in {info.get('ranker_seconds', 0):.1f} s)")
    return f"fixed blend ({info.get('why')})"
