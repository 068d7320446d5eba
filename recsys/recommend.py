"""What a recommendation is, and the settings of the recommender (sources, blend weights, ranker).

The machinery lives in :mod:`recsys.sources` (candidate sources, one module each) and
:mod:`recsys.rank` (the LightGBM ranker, the fallback blend and the two-stage recommender).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .rules import RulesConfig


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
class RecommendConfig:
    """Candidate sources, fallback blend weights and the learned ranker's settings."""

    # fallback blend (used without enough histories for the ranker, or when weights are given per call)
    w_rules: float = 1.5
    w_neighbours: float = 0.5  # FAISS content neighbours
    w_cluster: float = 0.15
    w_popularity: float = 0.05
    w_artist: float = 0.5  # same artist as a recent track (catalogue metadata: reaches unplayed tracks)
    w_album: float = 0.3  # same album as a recent track
    w_itemknn: float = 0.0  # collaborative sources: 0 keeps the blend as it was before the ranker
    w_sequence: float = 0.0
    w_vsknn: float = 0.0
    w_als: float = 0.0
    w_ease: float = 0.0
    w_next: float = 1.0  # multiplier of sequential ("next") rules relative to co-occurrence rules
    # candidate budgets and context
    n_neighbours: int = 50  # FAISS neighbours per recent track
    n_cluster: int = 30  # most-played members taken from each recent track's cluster
    n_artist: int = 20  # most popular tracks taken per recent artist / album
    n_candidates: int = 100  # candidates per collaborative source (itemknn, sequence, vsknn, ease, als)
    n_group_candidates: int = 500  # candidates per blend source (rules, content, cluster, artist, album)
    n_rank_candidates: int = 0  # > 0: the ranker takes this many from every source (0: the budgets above)
    recency_decay: float = 0.8  # weight of the k-th most recent track: decay**k
    max_recent: int = 10  # recent tracks that weigh in the content, rule and metadata sources
    max_context: int = 100  # plays of context kept (excluded from the results; used by vsknn / als)
    profile_query: bool = True  # also search around the weighted mean of the recent tracks
    # collaborative sources
    knn_neighbours: int = 100  # item-kNN: most similar items kept per item
    knn_shrink: float = 0.0  # item-kNN: cosine = co-plays / (sqrt(n_a n_b) + shrink)
    vsknn_k: int = 50  # session kNN: neighbouring histories that vote
    vsknn_weighting: str = "linear"  # weight of the i-th most recent context track: linear | div | same
    ease_lambda: float = 200.0  # EASE (Steck 2019) L2 regularisation
    # EASE: dense over at most this many played items (the most played). Its cost grows as the cube:
    # 8,000 items take ~3 s a fit on 2 cores (float32 Cholesky), 20,000 about 45 s and 1.6 GB per copy
    ease_max_items: int = 8_000
    als_factors: int = 64
    als_iterations: int = 15
    als_regularization: float = 0.01
    als_alpha: float = 1.0
    # self-tuning of the collaborative sources at build (small grids, recsys/sources/tune.py)
    tune_seconds: float = 120.0  # time budget of the search (0 = keep the values above)
    tune_validation: float = 0.2  # share of the training users held out to score the grid
    tune_min_users: int = 200  # fewer users with 2+ plays: no tuning
    # learned ranker
    ranker: str = "auto"  # auto (LightGBM with >= min_ranker_users, else blend) | lightgbm | blend
    min_ranker_users: int = 200
    ranker_folds: int = 4  # k-fold by user: each fold's queries are ranked by sources fitted on the others
    ranker_max_queries: int = 20_000  # training queries at most (fewer cut points per user to stay under)
    ranker_queries_per_user: int = 10  # cut points per user: the last play and random earlier ones
    ranker_negatives: int = 100  # negatives per query, drawn uniformly from the candidate union
    ranker_guard: bool = True  # serve the best source alone when the ranker does not beat it at build
    ranker_guard_queries: int = 3_000  # queries of the guard users kept for the guard (ranked whole)
    max_cold_slots: int = 3  # places of the top 10 the guard may keep for never-played tracks
    ranker_rounds: int = 500
    ranker_learning_rate: float = 0.05
    ranker_leaves: int = 15
    ranker_min_leaf: int = 50
    ranker_validation: float = 0.2  # share of query users held out for early stopping
    ranker_early_stop: int = 30
    seed: int = 0
    # the rules source mines its own rules from the plays it is fitted on (TOML [engine.recommend.rules])
    rules: RulesConfig = field(default_factory=RulesConfig)
