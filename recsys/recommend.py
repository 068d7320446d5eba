"""Next-track recommendation: candidates from rules, clusters and FAISS neighbours, one blended score.

Every candidate carries the reasons that put it there ("rule {A}->X conf 0.62 lift 3.1",
"same cluster 12 as A", "neighbour of A (cos 0.91)"). More recent tracks count more (geometric
decay). Content sources (neighbours, clusters) reach tracks nobody has played yet.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .rules import RuleIndex


@dataclass
class Recommendation:
    """One recommended track with its blended score and the reasons behind it."""

    track_id: str
    score: float
    reasons: list[str] = field(default_factory=list)
    track_name: str | None = None
    track_artist: str | None = None

    def to_dict(self) -> dict:
        return {"track_id": self.track_id, "score": round(float(self.score), 6), "reasons": list(self.reasons),
                "track_name": self.track_name, "track_artist": self.track_artist}


@dataclass
class RecommendConfig:
    """Weights of the blended score and candidate budgets."""

    w_rules: float = 1.5
    w_neighbours: float = 0.5
    w_cluster: float = 0.15
    w_popularity: float = 0.05
    w_artist: float = 0.5  # same artist as a recent track (catalogue metadata: reaches unplayed tracks)
    w_album: float = 0.3  # same album as a recent track
    w_next: float = 1.0  # multiplier of sequential ("next") rules relative to co-occurrence rules
    n_neighbours: int = 50  # FAISS neighbours per recent track
    n_cluster: int = 30  # most-played members taken from each recent track's cluster
    n_artist: int = 20  # most popular tracks taken per recent artist / album
    recency_decay: float = 0.8  # weight of the k-th most recent track: decay**k
    max_recent: int = 10
    profile_query: bool = True  # also search around the weighted mean of the recent tracks


class Recommender:
    """Blends rule, cluster and neighbour candidates over catalogue rows (the engine maps ids)."""

    def __init__(self, *, embeddings: np.ndarray, index, clusters: np.ndarray, rules: RuleIndex | None,
                 popularity: np.ndarray, labels: list[str] | np.ndarray, config: RecommendConfig | None = None,
                 meta: dict[str, np.ndarray] | None = None, catalog_popularity: np.ndarray | None = None) -> None:
        self.embeddings = embeddings
        self.index = index
        self.clusters = np.asarray(clusters)
        self.rules = rules
        self.popularity = np.asarray(popularity, dtype=np.float64)
        self.labels = labels  # display label per row (track id) for reasons
        self.config = config or RecommendConfig()
        # meta: "artist"/"album" -> int code per row (-1 unknown); catalog_popularity: 0..100 or NaN
        self.meta = {k: np.asarray(v) for k, v in (meta or {}).items()}
        self.catalog_popularity = catalog_popularity
        self._prepare()

    def _prepare(self) -> None:
        self._pop_score = np.log1p(self.popularity) / max(np.log1p(self.popularity.max()), 1e-9)
        prior = self._pop_score.copy()
        if self.catalog_popularity is not None:
            cp = np.nan_to_num(np.asarray(self.catalog_popularity, dtype=np.float64), nan=0.0) / 100.0
            prior = 0.5 * prior + 0.5 * np.clip(cp, 0, 1)
        self._prior = prior
        self._cluster_top = self._top_members(self.clusters, self.config.n_cluster)
        self._meta_top = {k: self._top_members(v, self.config.n_artist) for k, v in self.meta.items()}

    def _top_members(self, codes: np.ndarray, n_top: int) -> dict[int, np.ndarray]:
        """Per group code, its members by prior (most played / popular first), trimmed to the budget."""
        n_top = max(n_top, 1)
        order = np.lexsort((np.arange(len(codes)), -self._prior, codes))
        order = order[codes[order] >= 0]
        cl_sorted = codes[order]
        if len(order) == 0:
            return {}
        starts = np.flatnonzero(np.r_[True, cl_sorted[1:] != cl_sorted[:-1]])
        ends = np.r_[starts[1:], len(order)]
        return {int(cl_sorted[s]): order[s:min(e, s + n_top)] for s, e in zip(starts, ends)}

    def add_rows(self, clusters_new: np.ndarray, embeddings: np.ndarray, labels,
                 meta_new: dict[str, np.ndarray] | None = None, catalog_popularity_new: np.ndarray | None = None) -> None:
        """Track new catalogue rows (after index.add): zero plays, their clusters, their labels."""
        n_new = len(clusters_new)
        self.embeddings = embeddings
        self.clusters = np.concatenate([self.clusters, clusters_new])
        self.popularity = np.concatenate([self.popularity, np.zeros(n_new)])
        for k in list(self.meta):
            add = (meta_new or {}).get(k, np.full(n_new, -1))
            self.meta[k] = np.concatenate([self.meta[k], add])
        if self.catalog_popularity is not None:
            add = catalog_popularity_new if catalog_popularity_new is not None else np.full(n_new, np.nan)
            self.catalog_popularity = np.concatenate([self.catalog_popularity, add])
        self.labels = labels
        self._prepare()

    def _reason(self, text) -> str:
        if isinstance(text, str):
            return text
        R, rid = self.rules, text[1]
        names = ",".join(str(self.labels[int(a)]) for a in R.antecedents[rid])
        kind = "next" if R.kind_next[rid] else "rule"
        return (f"{kind} {{{names}}}->{self.labels[int(R.consequent[rid])]} "
                f"conf {R.confidence[rid]:.2f} lift {R.lift[rid]:.1f}")

    def recommend_rows(self, recent: list[int], k: int = 10, *, exclude: set[int] | None = None,
                       use: tuple[str, ...] = ("rules", "cluster", "neighbours", "artist", "album"),
                       ) -> list[tuple[int, float, list[str]]]:
        """Top-k (row, score, reasons) after ``recent`` (oldest first), never returning a recent row."""
        c = self.config
        recent = [int(r) for r in recent][-c.max_recent:]
        # distinct, keeping the most recent occurrence
        seen: dict[int, float] = {}
        for pos, r in enumerate(reversed(recent)):
            if r not in seen:
                seen[r] = c.recency_decay ** pos
        weight = seen
        rows = list(weight)
        excluded = set(rows) | (exclude or set())
        rule_s: dict[int, float] = {}
        nb_s: dict[int, float] = {}
        cl_s: dict[int, float] = {}
        meta_s: dict[str, dict[int, float]] = {"artist": {}, "album": {}}
        why: dict[int, dict[str, tuple[float, str]]] = {}

        def note(cand: int, src: str, s: float, text: str, table: dict) -> None:
            if cand in excluded or cand < 0:
                return
            if s > table.get(cand, 0.0):
                table[cand] = s
                why.setdefault(cand, {})[src] = (s, text)

        if "rules" in use and self.rules is not None and self.rules.n_rules and c.w_rules > 0:
            # several rules for one candidate combine as a noisy-or: 1 - prod(1 - strength)
            R = self.rules
            miss: dict[int, float] = {}
            best: dict[int, tuple[float, int]] = {}
            for rid in R.match(rows).tolist():
                cons = int(R.consequent[rid])
                if cons in excluded:
                    continue
                w = max(weight[int(a)] for a in R.antecedents[rid])
                s = min(float(R.strength[rid]) * w * (c.w_next if R.kind_next[rid] else 1.0), 1.0)
                miss[cons] = miss.get(cons, 1.0) * (1.0 - s)
                if s > best.get(cons, (0.0, -1))[0]:
                    best[cons] = (s, rid)
            for cons, m in miss.items():
                rule_s[cons] = 1.0 - m
                why.setdefault(cons, {})["rules"] = (best[cons][0], ("rule", best[cons][1]))
        if "neighbours" in use and c.w_neighbours > 0:
            Q = self.embeddings[rows]
            if c.profile_query and len(rows) > 1:
                w = np.array([weight[r] for r in rows], dtype=np.float32)[:, None]
                prof = (Q * w).sum(0, keepdims=True)
                nrm = np.linalg.norm(prof)
                if nrm > 0:
                    Q = np.vstack([Q, prof / nrm])
            sims, ids = self.index.search(Q, c.n_neighbours + len(rows))
            for qi in range(len(Q)):
                if qi < len(rows):
                    src, wq, label = rows[qi], weight[rows[qi]], f"neighbour of {self.labels[rows[qi]]}"
                else:
                    src, wq, label = -1, 1.0, "close to the recent mix"
                for sim, cand in zip(sims[qi], ids[qi]):
                    cand = int(cand)
                    if cand < 0 or cand == src:
                        continue
                    s = max(float(sim), 0.0) * wq
                    note(cand, "neighbours", s, f"{label} (cos {float(sim):.2f})", nb_s)
        if "cluster" in use and c.w_cluster > 0:
            for r in rows:
                cl = int(self.clusters[r])
                members = self._cluster_top.get(cl, ())
                m = max(len(members), 1)
                for rank, cand in enumerate(members):
                    s = weight[r] * (1.0 - rank / (2.0 * m))
                    note(int(cand), "cluster", s, f"same cluster {cl} as {self.labels[r]}", cl_s)
        for key, wk in (("artist", c.w_artist), ("album", c.w_album)):
            codes = self.meta.get(key)
            if key not in use or wk <= 0 or codes is None:
                continue
            shared: dict[int, tuple[float, int]] = {}
            for r in rows:
                code = int(codes[r])
                if code >= 0:
                    tot, first = shared.get(code, (0.0, r))
                    shared[code] = (tot + weight[r], first)
            for code, (tot, first) in shared.items():
                for cand in self._meta_top[key].get(code, ()):
                    s = min(tot, 1.0) * (0.5 + 0.5 * float(self._prior[cand]))
                    note(int(cand), key, s, f"same {key} as {self.labels[first]}", meta_s[key])
        if not why:
            return []
        cands = np.fromiter(why.keys(), dtype=np.int64, count=len(why))
        score = (c.w_rules * np.array([rule_s.get(x, 0.0) for x in cands.tolist()])
                 + c.w_neighbours * np.array([nb_s.get(x, 0.0) for x in cands.tolist()])
                 + c.w_cluster * np.array([cl_s.get(x, 0.0) for x in cands.tolist()])
                 + c.w_artist * np.array([meta_s["artist"].get(x, 0.0) for x in cands.tolist()])
                 + c.w_album * np.array([meta_s["album"].get(x, 0.0) for x in cands.tolist()])
                 + c.w_popularity * self._pop_score[cands])
        k = min(k, len(cands))
        top = np.argpartition(-score, k - 1)[:k] if k < len(cands) else np.arange(len(cands))
        top = top[np.lexsort((cands[top], -score[top]))]
        out = []
        for t in top:
            row = int(cands[t])
            reasons = [self._reason(text) for _, (s, text) in sorted(why[row].items(), key=lambda kv: -kv[1][0])]
            out.append((row, float(score[t]), reasons))
        return out
