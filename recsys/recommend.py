"""What a recommendation is, and the settings of the recommender (sources, blend weights, ranker).

The machinery lives in :mod:`recsys.sources` (candidate sources, one module each) and
:mod:`recsys.rank` (the LightGBM ranker, the fallback blend and the two-stage recommender).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Recommendation:
    """One recommended track with its score and the reasons behind it (most important first)."""

    track_id: str
    score: float
    reasons: list[str] = field(default_factory=list)
    track_name: str | None = None
    track_artist: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict (score rounded to 6 digits)."""
        return {"track_id": self.track_id, "score": round(float(self.score), 6),
                "reasons": list(self.reasons),
                "track_name": self.track_name, "track_artist": self.track_artist}


class Recommendations(list):
    """A list of :class:`Recommendation`; ``note`` says why it holds fewer than the k asked for
    (else None)."""

    def __init__(self, items=(), *, note: str | None = None) -> None:
        super().__init__(items)
        self.note = note


@dataclass
class RankerConfig:
    """The learned ranker (LightGBM lambdarank): when it is used, how it is trained and guarded."""

    mode: str = "auto"  # auto (LightGBM with >= min_users, else the blend) | lightgbm | blend
    min_users: int = 200
    folds: int = 4  # k-fold by user: each fold's queries are ranked by sources fitted on the others
    max_queries: int = 20_000  # training queries at most (fewer cut points per user to stay under)
    queries_per_user: int = 10  # cut points per user: the last play and random earlier ones
    negatives: int = 100  # negatives per query, drawn uniformly from the candidate union
    guard: bool = True  # serve the best source alone when the ranker does not beat it at build
    guard_queries: int = 3_000  # queries of the guard users kept for the guard (ranked whole)
    max_cold_slots: int = 3  # places of the top 10 the guard may keep for never-played tracks
    cold_se: float = 1.0  # HR@10 the guard may give up for cold-target hits, in standard errors (0: none)
    rounds: int = 500
    learning_rate: float = 0.05
    leaves: int = 15
    min_leaf: int = 50
    validation: float = 0.2  # share of query users held out for early stopping
    early_stop: int = 30
    # a second ranker for continuing a playlist: query = a user's first 5-25 plays (weighted alike),
    # positives = every later track (recsys.playlist selection "ranked")
    continuation: bool = True
    continuation_min_plays: int = 10  # users with fewer plays give no continuation query
    continuation_per_user: int = 3  # seeds of different lengths per user
    # recall@50 the continuation ranker may trail the next-track ranker on the guard playlists and still be
    # kept, in standard errors of their paired per-playlist difference (0: it must be better). It is
    # trained for the task; a guard of ~150 playlists cannot tell a 0.001 gap from noise.
    continuation_se: float = 1.0
    # serving: the first `cut_trees` trees score every candidate, the whole model only the best
    # max(`cut_keep`, 4 x k) of them (0 = the whole model on every candidate)
    cut_trees: int = 20
    cut_keep: int = 100


@dataclass
class RecommendConfig:
    """Settings shared by the recommender (context, tuning, the learned ranker); each candidate source's
    own settings are its ``Config`` dataclass in ``recsys/sources/`` (blend weight, candidate budget and
    its method's parameters), given here per source name: ``sources = {"vsknn": {"k": 100}}``, TOML
    ``[engine.recommend.sources.vsknn]``, merged over that source's defaults."""

    sources: dict = field(default_factory=dict)  # source name -> {setting: value} over its Config
    w_popularity: float = 0.05  # the fallback blend's popularity prior (each source's weight: its Config)
    n_rank_candidates: int = 0  # > 0: the ranker takes this many from every source (0: each one's budget)
    recency_decay: float = 0.8  # weight of the k-th most recent track: decay**k
    max_recent: int = 10  # recent tracks that weigh in the content, rule and metadata sources
    max_context: int = 100  # plays of context kept (excluded from the results; used by vsknn / als)
    # self-tuning of the collaborative sources at build (small grids, recsys/sources/tune.py)
    tune_seconds: float = 120.0  # time budget of the search (0 = keep each source's settings)
    tune_validation: float = 0.2  # share of the training users held out to score the grid
    tune_min_users: int = 200  # fewer users with 2+ plays: no tuning
    ranker: RankerConfig = field(default_factory=RankerConfig)  # TOML [engine.recommend.ranker]
    seed: int = 0
