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

    def _reason(self, text) -> str:
        if isinstance(text, str):
            return text
        R, rid = self.rules, text[1]
        names = ",".join(str(self.labels[int(a)]) for a in R.antecedent(rid))
        kind = "next" if R.kind_next[rid] else "rule"
        return (f"{kind} {{{names}}}->{self.labels[int(R.consequent[rid])]} "
                f"conf {R.confidence[rid]:.2f} lift {R.lift[rid]:.1f}")

    def recommend_rows(self, recent: list[int], k: int = 10, *, exclude: set[int] | None = None,
                       use: tuple[str, ...] = ("rules", "cluster", "neighbours", "artist", "album"),
                       ) -> list[tuple[int, float, list[str]]]:
        """Top-k (row, score, reasons) after ``recent`` (oldest first), never returning a recent row.

        Each source yields (candidate, strength, reason) arrays; per source a candidate keeps its best
        strength (rules: noisy-or over the rules that fire), and the blended score is the weighted sum.
        Reasons are formatted only for the k returned tracks.
        """
        c = self.config
        recent = [int(r) for r in recent][-c.max_recent:]
        weight: dict[int, float] = {}  # distinct rows, most recent occurrence wins
        for pos, r in enumerate(reversed(recent)):
            if r not in weight:
                weight[r] = c.recency_decay ** pos
        rows = np.fromiter(weight.keys(), dtype=np.int64, count=len(weight))
        wrow = np.fromiter(weight.values(), dtype=np.float64, count=len(weight))
        sources: list[tuple[str, float, np.ndarray, np.ndarray, list]] = []  # name, weight, cand, strength, reason payloads

        if "rules" in use and self.rules is not None and self.rules.n_rules and c.w_rules > 0:
            R = self.rules
            rids = R.match(rows.tolist())
            if len(rids):
                order = np.argsort(rows)
                lens = R.ante_len[rids]
                starts = np.r_[0, np.cumsum(lens)[:-1]]
                pos = np.arange(int(lens.sum())) - np.repeat(starts, lens) + np.repeat(R.ante_ptr[rids], lens)
                flat = R.ante_items[pos]
                wflat = wrow[order[np.searchsorted(rows[order], flat)]]
                w = np.maximum.reduceat(wflat, starts)
                s = np.minimum(R.strength[rids] * w * np.where(R.kind_next[rids], c.w_next, 1.0), 1.0)
                sources.append(("rules", c.w_rules, R.consequent[rids], s, (rids,)))
        if "neighbours" in use and c.w_neighbours > 0:
            Q = self.embeddings[rows]
            qw = wrow
            if c.profile_query and len(rows) > 1:
                prof = (Q * wrow[:, None].astype(np.float32)).sum(0, keepdims=True)
                nrm = float(np.linalg.norm(prof))
                if nrm > 0:
                    Q = np.vstack([Q, prof / nrm])
                    qw = np.r_[wrow, 1.0]
            sims, ids = self.index.search(Q, c.n_neighbours + len(rows))
            qi = np.repeat(np.arange(len(Q)), ids.shape[1])
            ids, sims = ids.ravel(), sims.ravel()
            src = np.r_[rows, -1][qi] if len(Q) > len(rows) else rows[qi]
            ok = (ids >= 0) & (ids != src)
            ids, sims, qi = ids[ok], sims[ok], qi[ok]
            sources.append(("neighbours", c.w_neighbours, ids.astype(np.int64), np.maximum(sims, 0) * qw[qi], (qi, sims)))
        groups = []
        if "cluster" in use and c.w_cluster > 0:
            groups.append(("cluster", c.w_cluster, self.clusters, self._cluster_top, 2.0))
        for key, wk in (("artist", c.w_artist), ("album", c.w_album)):
            if key in use and wk > 0 and key in self.meta:
                groups.append((key, wk, self.meta[key], self._meta_top[key], None))
        for key, wk, codes, top, _ in groups:
            cand, strength, why_code, why_first = [], [], [], []
            shared: dict[int, tuple[float, int]] = {}
            for r, wr in zip(rows.tolist(), wrow.tolist()):
                code = int(codes[r])
                if code >= 0:
                    tot, first = shared.get(code, (0.0, r))
                    shared[code] = (tot + wr if key != "cluster" else max(tot, wr), first)
            for code, (tot, first) in shared.items():
                members = top.get(code)
                if members is None or not len(members):
                    continue
                if key == "cluster":
                    st = tot * (1.0 - np.arange(len(members)) / (2.0 * len(members)))
                else:
                    st = min(tot, 1.0) * (0.5 + 0.5 * self._prior[members])
                cand.append(members)
                strength.append(st)
                why_code.append(np.full(len(members), code))
                why_first.append(np.full(len(members), first))
            if cand:
                sources.append((key, wk, np.concatenate(cand).astype(np.int64), np.concatenate(strength),
                                (np.concatenate(why_code), np.concatenate(why_first))))
        if not sources:
            return []
        allc = np.concatenate([x[2] for x in sources])
        uniq, inv = np.unique(allc, return_inverse=True)
        score = c.w_popularity * self._pop_score[uniq]
        best_entry: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        off = 0
        for name, wsrc, cand, st, _ in sources:
            ix = inv[off:off + len(cand)]
            off += len(cand)
            per = np.zeros(len(uniq))
            if name == "rules":
                miss = np.ones(len(uniq))
                np.multiply.at(miss, ix, 1.0 - st)
                per = 1.0 - miss
            else:
                np.maximum.at(per, ix, st)
            score += wsrc * per
            best_entry[name] = (ix, st)
        banned = np.isin(uniq, rows)
        if exclude:
            banned |= np.isin(uniq, np.fromiter(exclude, dtype=np.int64))
        score[banned] = -np.inf
        n_ok = int((~banned).sum())
        k = min(k, n_ok)
        if k <= 0:
            return []
        top = np.argpartition(-score, k - 1)[:k] if k < len(uniq) else np.arange(len(uniq))
        top = top[np.lexsort((uniq[top], -score[top]))]
        top = top[np.isfinite(score[top])][:k]
        out = []
        for t in top.tolist():
            reasons = []
            for name, wsrc, cand, st, payload in sources:
                ix, stv = best_entry[name]
                hit = np.flatnonzero(ix == t)
                if len(hit):
                    j = hit[np.argmax(stv[hit])]
                    reasons.append((wsrc * float(stv[j]), self._format(name, payload, j, rows)))
            reasons.sort(key=lambda x: -x[0])
            out.append((int(uniq[t]), float(score[t]), [r for _, r in reasons]))
        return out

    def _format(self, name: str, payload: tuple, j: int, rows: np.ndarray) -> str:
        if name == "rules":
            return self._reason(("rule", int(payload[0][j])))
        if name == "neighbours":
            q, sim = int(payload[0][j]), float(payload[1][j])
            if q < len(rows):
                return f"neighbour of {self.labels[int(rows[q])]} (cos {sim:.2f})"
            return f"close to the recent mix (cos {sim:.2f})"
        code, first = int(payload[0][j]), int(payload[1][j])
        if name == "cluster":
            return f"same cluster {code} as {self.labels[first]}"
        return f"same {name} as {self.labels[first]}"
