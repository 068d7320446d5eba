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
    w_next: float = 1.0  # multiplier of sequential ("next") rules relative to co-occurrence rules
    # candidate budgets and context
    n_neighbours: int = 50  # FAISS neighbours per recent track
    n_cluster: int = 30  # most-played members taken from each recent track's cluster
    n_artist: int = 20  # most popular tracks taken per recent artist / album
    n_candidates: int = 50  # blend: candidates per collaborative source
                            # (itemknn, sequence, vsknn, als, popular)
    n_rank_candidates: int = 0  # > 0: the ranker takes this many from every source (0: the budgets above)
    recency_decay: float = 0.8  # weight of the k-th most recent track: decay**k
    max_recent: int = 10  # recent tracks that weigh in the content, rule and metadata sources
    max_context: int = 100  # plays of context kept (excluded from the results; used by vsknn / als)
    profile_query: bool = True  # also search around the weighted mean of the recent tracks
    # collaborative sources
    knn_neighbours: int = 100  # item-kNN: most similar items kept per item
    vsknn_k: int = 50  # session kNN: neighbouring histories that vote
    als_factors: int = 64
    als_iterations: int = 15
    als_regularization: float = 0.01
    als_alpha: float = 1.0
    # learned ranker
    ranker: str = "auto"  # auto (LightGBM with >= min_ranker_users, else blend) | lightgbm | blend
    min_ranker_users: int = 200
    ranker_max_queries: int = 3_000  # training queries at most (users are sampled to stay under it)
    ranker_queries_per_user: int = 3  # held-out targets per sampled user (the cut, the last play, between)
    ranker_last_share: float = 0.5  # share of queries whose target is the user's last play
                                    # (else a random one)
    ranker_rounds: int = 500
    ranker_learning_rate: float = 0.05
    ranker_leaves: int = 15
    ranker_min_leaf: int = 50
    ranker_validation: float = 0.2  # share of query users held out for early stopping
    ranker_early_stop: int = 30
    seed: int = 0
