"""A whole playlist: choose the tracks with the recommender, then order them like a DJ.

Relevance: the set comes from the recommender, either in one shot or iteratively (each accepted
batch joins the context of the next call). Order: a path through the set with Camelot-compatible
keys, small folded tempo steps (double / half time count as close) and energy following an arc
(``flat``, ``rise``, ``peak``, ``fall``), found by a greedy start and 2-opt / or-opt local search.
A track of relevance rank ``i`` only moves to positions ``i - window .. i + window``, so the most
relevant tracks stay early. Every track carries its reasons plus a transition note.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import threads
from .errors import InputError
from .recommend import Recommendation

ARCS = ("flat", "rise", "peak", "fall")
SELECTIONS = ("fusion", "single", "iterative", "ranked")


# ---------------------------------------------------------------------------------------------- keys
def camelot(key, mode) -> np.ndarray:
    """Camelot code per track: 0..11 = 1A..12A (minor), 12..23 = 1B..12B (major); -1 when unknown.

    ``key`` is the pitch class (C = 0), ``mode`` 1 for major, 0 for minor (Spotify's convention).
    """
    k = np.asarray(key, dtype=np.float64)
    m = np.asarray(mode, dtype=np.float64)
    ok = np.isfinite(k) & np.isfinite(m) & (k >= 0) & (k <= 11)
    ki = np.where(ok, k, 0).astype(np.int64)
    major = np.where(ok, m, 1) >= 0.5
    base = np.where(major, ki, (ki + 3) % 12)  # a minor key sits at its relative major's number
    number = ((base * 7) % 12 + 7) % 12  # 0-based Camelot number: C major -> 7 (8B)
    return np.where(ok, number + 12 * major, -1).astype(np.int64)


def camelot_name(code: int) -> str:
    """``8A`` / ``9B`` for a code from :func:`camelot`; ``?`` when unknown."""
    code = int(code)
    if code < 0:
        return "?"
    return f"{code % 12 + 1}{'B' if code >= 12 else 'A'}"


def key_compatible(a, b) -> np.ndarray:
    """Camelot neighbours: same key, +-1 step on the wheel in the same mode, or relative major/minor."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    na, nb = a % 12, b % 12
    same_letter = (a // 12) == (b // 12)
    d = np.abs(na - nb)
    d = np.minimum(d, 12 - d)
    return (a >= 0) & (b >= 0) & ((same_letter & (d <= 1)) | (~same_letter & (d == 0)))


def tempo_step(t1, t2) -> np.ndarray:
    """|log2(t2 / t1)| folded so that double or half time counts as close (0 = same or 2x); NaN unknown."""
    t1 = np.asarray(t1, dtype=np.float64)
    t2 = np.asarray(t2, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.abs(np.log2(t2 / t1))
    s = np.where(np.isfinite(s) & (t1 > 0) & (t2 > 0), s, np.nan)
    return np.abs(s - np.round(s))


def transition_stats(codes, tempos) -> dict[str, float]:
    """Share of key-compatible adjacent pairs (of pairs with both keys known), median folded tempo step."""
    codes = np.asarray(codes, dtype=np.int64)
    tempos = np.asarray(tempos, dtype=np.float64)
    if len(codes) < 2:
        return {"key_compatible": float("nan"), "tempo_step": float("nan")}
    a, b = codes[:-1], codes[1:]
    known = (a >= 0) & (b >= 0)
    steps = tempo_step(tempos[:-1], tempos[1:])
    steps = steps[np.isfinite(steps)]
    return {
        "key_compatible": float(key_compatible(a[known], b[known]).mean()) if known.any() else float("nan"),
        "tempo_step": float(np.median(steps)) if len(steps) else float("nan"),
    }


# ---------------------------------------------------------------------------------------------- energy arc
def energy_arc(n: int, arc: str, energy: np.ndarray) -> np.ndarray:
    """Target energy per position for ``arc`` over the set's own energy range (20th..80th percentile)."""
    if arc not in ARCS:
        raise InputError(f"arc must be one of {', '.join(ARCS)}, not {arc!r}")
    e = np.asarray(energy, dtype=np.float64)
    e = e[np.isfinite(e)]
    if not len(e):
        return np.zeros(n)
    lo, mid, hi = (float(x) for x in np.percentile(e, [20, 50, 80]))
    x = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(n)
    if arc == "flat":
        return np.full(n, mid)
    if arc == "rise":
        return lo + (hi - lo) * x
    if arc == "fall":
        return hi - (hi - lo) * x
    peak = 0.65
    return np.where(x <= peak, lo + (hi - lo) * x / peak, hi - (hi - lo) * (x - peak) / (1 - peak))


# ---------------------------------------------------------------------------------------------- ordering
@dataclass
class OrderConfig:
    """Weights and bounds of the ordering optimiser."""

    window: int = 6  # a track of relevance rank i stays within positions i -+ window (at most n // 8) ...
    stretch: float = 0.25  # ... or i -+ stretch * i when that is more: the first picks stay first
    w_key: float = 2.0  # cost of a key-incompatible transition
    w_tempo: float = 1.0  # cost per ``tempo_scale`` of folded tempo step (capped at 3 scales)
    tempo_scale: float = 0.08
    w_energy: float = 0.5  # cost per unit of |energy jump| between neighbours
    w_arc: float = 4.0  # cost per unit of |energy - arc target| at each position
    max_passes: int = 12  # local-search passes (each tries every 2-opt and or-opt move once)
    budget_ms: float = 12.0  # stop local search after this long (50 tracks: as good as 25 ms, measured)


def transition_costs(
    codes: np.ndarray,
    tempos: np.ndarray,
    energy: np.ndarray,
    config: OrderConfig,
) -> np.ndarray:
    """(n, n) symmetric edge costs: key incompatibility, folded tempo step and energy jump."""
    c = config
    comp = key_compatible(codes[:, None], codes[None, :])
    unknown = (codes[:, None] < 0) | (codes[None, :] < 0)
    key = np.where(unknown, 0.5, (~comp).astype(np.float64))
    step = tempo_step(tempos[:, None], tempos[None, :])
    tempo = np.where(np.isfinite(step), np.minimum(step / c.tempo_scale, 3.0), 1.0)
    de = np.abs(energy[:, None] - energy[None, :])
    de = np.where(np.isfinite(de), de, 0.2)
    return c.w_key * key + c.w_tempo * tempo + c.w_energy * de


def order_tracks(
    codes,
    tempos,
    energy,
    *,
    arc: str = "flat",
    start: tuple[int, float, float] | None = None,
    config: OrderConfig | None = None,
) -> np.ndarray:
    """Positions -> input index: a smooth order of tracks given in relevance order.

    ``start`` (Camelot code, tempo, energy of the track played before) makes the first transition count.
    Greedy construction, then 2-opt and or-opt moves that keep every track within ``window`` of its
    relevance rank, until no move improves, ``max_passes`` or ``budget_ms``.
    """
    c = config or OrderConfig()
    codes = np.asarray(codes, dtype=np.int64)
    tempos = np.asarray(tempos, dtype=np.float64)
    energy = np.asarray(energy, dtype=np.float64)
    n = len(codes)
    if n <= 1:
        return np.arange(n)
    t0 = time.perf_counter()
    D = max(0, min(int(c.window), n // 8))  # short lists move less: the first picks stay first
    reach = [max(D, int(c.stretch * i)) if D else 0 for i in range(n)]  # later picks may move further
    lo = [i - reach[i] for i in range(n)]
    hi = [i + reach[i] for i in range(n)]
    C = transition_costs(codes, tempos, energy, c).tolist()
    if start is not None:
        sc = np.asarray([start[0]], dtype=np.int64)
        s_cost = transition_costs(np.r_[sc, codes], np.r_[[start[1]], tempos], np.r_[[start[2]], energy], c)
        S = s_cost[0, 1:].tolist()
    else:
        S = [0.0] * n
    target = energy_arc(n, arc, energy)
    dev = np.abs(energy[:, None] - target[None, :])
    P = (c.w_arc * np.where(np.isfinite(dev), dev, 0.0)).tolist()

    def edge(prev: int, cur: int) -> float:
        return S[cur] if prev < 0 else C[prev][cur]

    # greedy: at each position the cheapest allowed track (the one falling out of its window is forced)
    order: list[int] = []
    placed = [False] * n
    prev = -1
    for p in range(n):
        # the unplaced track whose latest position is p must go now (deadlines increase with rank)
        due = [i for i in range(n) if not placed[i] and hi[i] <= p]
        if due:
            j = due[0]
        else:
            best, j = math.inf, -1
            for cand in range(n):
                if not placed[cand] and lo[cand] <= p:
                    v = edge(prev, cand) + P[cand][p]
                    if v < best:
                        best, j = v, cand
        placed[j] = True
        order.append(j)
        prev = j

    def ed(x: int, y: int) -> float:  # x == -1: the start track
        return S[y] if x < 0 else C[x][y]

    budget = c.budget_ms / 1000.0
    for _ in range(c.max_passes):
        improved = False
        # 2-opt: reverse positions i..j (edge costs are symmetric: only the two ends and the positions change)
        for i in range(n - 1):
            a = order[i - 1] if i > 0 else -1
            for j in range(i + 1, min(n, i + 2 * max(reach[order[i]], D) + 1)):
                d, ok = 0.0, True
                for t in range(j - i + 1):
                    x = order[j - t]
                    if not lo[x] <= i + t <= hi[x]:
                        ok = False
                        break
                    d += P[x][i + t] - P[order[i + t]][i + t]
                if not ok:
                    continue
                d += ed(a, order[j]) - ed(a, order[i])
                if j + 1 < n:
                    b = order[j + 1]
                    d += C[order[i]][b] - C[order[j]][b]
                if d < -1e-9:
                    order[i : j + 1] = order[i : j + 1][::-1]
                    improved = True
        # or-opt: move a run of 1-3 tracks to a new start k within the window
        for L in (1, 2, 3):
            for i in range(n - L + 1):
                seg = order[i : i + L]
                s0, s1 = seg[0], seg[-1]
                a = order[i - 1] if i > 0 else -1
                after = order[i + L] if i + L < n else None
                # closing the gap the run leaves
                gap = (
                    (ed(a, after) if after is not None else 0.0)
                    - ed(a, s0)
                    - (C[s1][after] if after is not None else 0.0)
                )
                best, best_k = -1e-9, -1
                shift = 0.0  # position-cost change of the tracks the run jumps over
                for k in range(i - 1, max(-1, lo[s0] - 1), -1):  # move left: order[k..i-1] shift right by L
                    x = order[k]
                    if k + L > hi[x]:
                        break
                    shift += P[x][k + L] - P[x][k]
                    if any(not lo[seg[t]] <= k + t <= hi[seg[t]] for t in range(L)):
                        continue
                    pk = order[k - 1] if k > 0 else -1
                    d = shift + sum(P[seg[t]][k + t] - P[seg[t]][i + t] for t in range(L))
                    # new edges: pk -> s0, s1 -> x (x = order[k]); old: pk -> x; the gap closes at i
                    d += ed(pk, s0) + C[s1][x] - ed(pk, x) + gap
                    if d < best:
                        best, best_k = d, k
                shift = 0.0
                for k in range(
                    i + 1, min(n - L, hi[s0]) + 1
                ):  # move right: order[i+L..k+L-1] shift left by L
                    x = order[k + L - 1]
                    if k - 1 < lo[x]:
                        break
                    shift += P[x][k - 1] - P[x][k + L - 1]
                    if any(not lo[seg[t]] <= k + t <= hi[seg[t]] for t in range(L)):
                        continue
                    nxt = order[k + L] if k + L < n else None
                    d = shift + sum(P[seg[t]][k + t] - P[seg[t]][i + t] for t in range(L))
                    # new edges: x -> s0, s1 -> nxt; old: x -> nxt; the gap closes at i
                    d += C[x][s0] - (C[x][nxt] - C[s1][nxt] if nxt is not None else 0.0)
                    d += ed(a, order[i + L]) - ed(a, s0) - C[s1][order[i + L]]
                    if d < best:
                        best, best_k = d, k
                if best_k >= 0:
                    rest = order[:i] + order[i + L :]
                    order = rest[:best_k] + seg + rest[best_k:]
                    improved = True
            if time.perf_counter() - t0 > budget:
                break
        if not improved or time.perf_counter() - t0 > budget:
            break
    return np.asarray(order, dtype=np.int64)


def order_cost(
    order, codes, tempos, energy, *, arc: str = "flat", config: OrderConfig | None = None
) -> float:
    """Total cost of an order under the optimiser's objective (no start track)."""
    c = config or OrderConfig()
    order = np.asarray(order, dtype=np.int64)
    codes, tempos, energy = (np.asarray(x)[order] for x in (codes, tempos, energy))
    C = transition_costs(codes, tempos.astype(np.float64), energy.astype(np.float64), c)
    n = len(order)
    target = energy_arc(n, arc, energy)
    dev = np.abs(energy - target)
    edges = float(C[np.arange(n - 1), np.arange(1, n)].sum()) if n > 1 else 0.0
    return edges + c.w_arc * float(np.nansum(dev))


# ---------------------------------------------------------------------------------------------- notes
def transition_note(prev: tuple[int, float, float] | None, cur: tuple[int, float, float]) -> str:
    """ "8A -> 9A, 124 -> 126 BPM, energy +0.05" (double / half time named)."""
    code, tempo, energy = cur
    if prev is None:
        parts = [camelot_name(code)]
        if np.isfinite(tempo):
            parts.append(f"{tempo:.0f} BPM")
        if np.isfinite(energy):
            parts.append(f"energy {energy:.2f}")
        return "opens: " + ", ".join(parts)
    pc, pt, pe = prev
    parts = [
        f"{camelot_name(pc)} -> {camelot_name(code)}"
        + ("" if pc < 0 or code < 0 or key_compatible(pc, code) else " (key clash)")
    ]
    if np.isfinite(pt) and np.isfinite(tempo) and pt > 0 and tempo > 0:
        ratio = math.log2(tempo / pt)
        near = abs(ratio - round(ratio)) < 0.15  # within ~10 % of exactly double / half
        what = (
            ""
            if not near
            else " (double time)"
            if round(ratio) >= 1
            else " (half time)"
            if round(ratio) <= -1
            else ""
        )
        parts.append(f"{pt:.0f} -> {tempo:.0f} BPM{what}")
    if np.isfinite(pe) and np.isfinite(energy):
        parts.append(f"energy {energy - pe:+.2f}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------- selection
Recommend = Callable[[list[int], int], tuple[Sequence[int], Sequence[float], list[list[str]] | None]]


def select_tracks(
    recommend: Recommend, seed: Sequence[int], length: int, *, selection: str = "iterative", step: int = 10
) -> tuple[list[int], list[float], list[list[str]]]:
    """``length`` rows in relevance order: one call (``single``; ``fusion`` or ``ranked`` with that
    ``recommend``) or batches of ``step`` whose tracks join the context of the next call (``iterative``).
    Returns rows, scores and reasons."""
    if selection not in SELECTIONS:
        raise InputError(f"selection must be one of {', '.join(SELECTIONS)}, not {selection!r}")
    seed = [int(r) for r in seed]
    if selection in ("single", "fusion", "ranked"):
        rows, scores, why = recommend(seed, length)
        return [int(r) for r in rows], [float(s) for s in scores], list(why or [[] for _ in rows])
    out_r: list[int] = []
    out_s: list[float] = []
    out_w: list[list[str]] = []
    taken = set(seed)
    while len(out_r) < length:
        want = min(max(1, step), length - len(out_r))
        rows, scores, why = recommend(seed + out_r, want)
        got = 0
        for j, r in enumerate(rows):
            r = int(r)
            if r in taken:
                continue
            taken.add(r)
            out_r.append(r)
            out_s.append(float(scores[j]))
            out_w.append(list(why[j]) if why else [])
            got += 1
            if got == want:
                break
        if got == 0:
            break
    return out_r, out_s, out_w


# ---------------------------------------------------------------------------------------------- the maker
@dataclass
class PlaylistConfig:
    """How a playlist is chosen (selection, batch size) and ordered."""

    # auto | fusion | single | iterative | ranked: auto = ranked when the index has a continuation ranker
    # (it beat the next-track ranker on the build's guard playlists), else fusion (reciprocal-rank fusion
    # of the ranked hybrid and the sources); validation playlists chose these (recsys evaluate --task
    # continuation --valid)
    selection: str = "auto"
    step: int = 10  # tracks accepted per recommender call when iterative
    decay: float = (
        1.0  # recency weight of the seed's k-th newest track: decay**k (a seed is a set, not a queue)
    )
    fusion: dict[str, float] = field(default_factory=lambda: {"hybrid": 2.0, "vsknn": 2.0, "itemknn": 0.5})
    fusion_k: float = 20.0  # reciprocal rank: weight / (fusion_k + rank)
    pool: int = 100  # candidates taken from each fused list
    reasons: int = 4  # technical reasons kept per track (the sources that ranked it highest)
    order: OrderConfig = field(default_factory=OrderConfig)


def rank_fusion(
    lists: dict[str, Sequence[int]], weights: dict[str, float], *, k: float = 20.0, n: int | None = None
) -> tuple[list[int], list[float]]:
    """Reciprocal-rank fusion: score(row) = sum over lists of weight / (k + rank); best first, ties by row."""
    score: dict[int, float] = {}
    for name, rows in lists.items():
        w = float(weights.get(name, 0.0))
        if w <= 0:
            continue
        for i, r in enumerate(rows):
            score[int(r)] = score.get(int(r), 0.0) + w / (k + i)
    best = sorted(score, key=lambda r: (-score[r], r))[:n]
    return best, [score[r] for r in best]


def with_decay(recommender, decay: float):
    """A shallow copy of a fitted recommender (and its sources) whose contexts use ``decay``."""
    import copy

    if abs(recommender.config.recency_decay - decay) < 1e-12:
        return recommender
    cfg = dataclasses.replace(recommender.config, recency_decay=decay)
    out = copy.copy(recommender)
    out.config = cfg
    if hasattr(recommender, "sources"):
        out.sources = {}
        for name, src in recommender.sources.items():
            s = copy.copy(src)
            s.config = cfg
            out.sources[name] = s
    return out


@dataclass
class PlaylistTrack(Recommendation):
    """One playlist entry: a recommendation with its position, relevance rank and transition."""

    position: int = 0
    relevance_rank: int = 0  # 0 = the recommender's first choice
    camelot: str = "?"
    tempo: float | None = None
    energy: float | None = None
    transition: str = ""
    summary: list[str] = field(default_factory=list)  # one or two plain sentences; ``reasons`` = details

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update(
            summary=list(self.summary),
            position=self.position,
            relevance_rank=self.relevance_rank,
            camelot=self.camelot,
            tempo=self.tempo,
            energy=self.energy,
            transition=self.transition,
        )
        return d


def _num(v) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 3)


class PlaylistMaker:
    """Playlists over one catalogue: per-row Camelot codes, tempo and energy, plus a recommend function."""

    def __init__(
        self,
        *,
        codes: np.ndarray,
        tempos: np.ndarray,
        energy: np.ndarray,
        ids: np.ndarray,
        names: np.ndarray,
        artists: np.ndarray,
        recommend: Recommend,
        config: PlaylistConfig | None = None,
        keys: np.ndarray | None = None,
        modes: np.ndarray | None = None,
        row_of: Callable[[str], int | None] | None = None,
        fused: Recommend | None = None,
        ranked: Recommend | None = None,
    ) -> None:
        self.fused, self.ranked = fused, ranked
        self.codes, self.tempos, self.energy = codes, tempos, energy
        self.keys, self.modes, self.row_of = keys, modes, row_of
        self.ids, self.names, self.artists = ids, names, artists
        self.recommend = recommend
        self.config = config or PlaylistConfig()

    @classmethod
    def from_engine(cls, engine, config: PlaylistConfig | None = None) -> PlaylistMaker:
        """Over an Engine's public surface: ``tracks`` (frame, ids, names, artists) and ``recommender``."""
        t = engine.tracks
        frame = t.frame

        def col(name):
            if name not in frame.columns:
                return np.full(len(frame), np.nan)
            return np.asarray(frame[name].to_numpy(dtype=np.float64, na_value=np.nan))

        c = config or PlaylistConfig()
        rec = with_decay(engine.recommender, c.decay)

        def recommend(rows, k):
            got = rec.recommend(rows, k, reasons=True)
            return got.rows.tolist(), got.scores.tolist(), got.reasons

        def why_of(ctx, cand, best, lists):
            """Per track, the reasons of the sources that ranked it highest (at most ``c.reasons``)."""
            pos = np.searchsorted(cand.rows, best)
            why = []
            for r, p in zip(best, pos.tolist()):
                hit = p < len(cand.rows) and cand.rows[p] == r
                ranked = sorted(
                    (float(cand.ranks[s][p]), s) for s in rec.sources if hit and np.isfinite(cand.ranks[s][p])
                )
                names = [s for _, s in ranked] or [s for s in lists if s in rec.sources and r in lists[s]]
                texts = (rec.sources[s].explain(ctx, r) for s in names)
                why.append(list(itertools.islice((t for t in texts if t), c.reasons)))
            return why

        def fused_inner(rows, k):
            n = max(k, c.pool)
            ctx = rec.context(rows)
            cand = rec.candidates(ctx)  # once: ranks the hybrid's list and tells who proposed each track
            if getattr(rec, "mode", None) == "lightgbm" and len(cand.rows):
                # HybridRecommender.recommend's ranking (ranker score, ties by the blend, then row) over
                # the same candidates, without computing them twice
                order, _ = rec.ranker.rank(rec.features(ctx, cand), rec.blend_scores(cand), cand.rows,
                                           max(rec.config.ranker.cut_keep, 4 * n))
                hybrid = cand.rows[order[:n]].tolist()
            else:
                hybrid = rec.recommend(rows, n).rows.tolist()
            lists = {"hybrid": hybrid}
            for name in c.fusion:
                if name in rec.sources:
                    lists[name] = rec.sources[name].recommend(rows, n).rows.tolist()
            best, scores = rank_fusion(lists, c.fusion, k=c.fusion_k, n=k)
            return best, scores, why_of(ctx, cand, best, lists)

        def fused(rows, k):
            with threads.one_thread():  # per-request work: one BLAS/OpenMP thread (recsys.threads)
                return fused_inner(rows, k)

        cont = getattr(getattr(rec, "ranker", None), "continuation_", None)

        def ranked(rows, k):
            """The continuation ranker (trained on later tracks of playlists, not the next one) over the
            hybrid's candidates."""
            with threads.one_thread():
                ctx = rec.context(rows)
                cand = rec.candidates(ctx)
                if not len(cand.rows):
                    return [], [], []
                order, score = cont.rank(rec.features(ctx, cand), rec.blend_scores(cand), cand.rows,
                                         max(rec.config.ranker.cut_keep, 4 * k))
                top = order[:k]
                best = cand.rows[top].tolist()
                return best, score[top].tolist(), why_of(ctx, cand, best, {})

        keys, modes = col("key"), col("mode")
        return cls(
            keys=keys,
            modes=modes,
            row_of=t.get,
            codes=camelot(keys, modes),
            tempos=col("tempo"),
            energy=col("energy"),
            ids=t.ids,
            names=t.names,
            artists=t.artists,
            recommend=recommend,
            fused=fused,
            ranked=ranked if cont is not None else None,  # none: small histories, or it lost at build
            config=c,
        )

    @property
    def selections(self) -> tuple[str, ...]:
        """The selections this maker can make (``ranked`` needs the index's continuation ranker;
        without it, ``ranked`` is single shot)."""
        return tuple(s for s in SELECTIONS if s != "ranked" or self.ranked is not None)

    def title(self, track_id: str) -> str | None:
        """The title of a track id (None when unknown or untitled)."""
        r = self.row_of(track_id) if self.row_of is not None else None
        n = self.names[r] if r is not None else None
        return None if n is None else str(n)

    def sound(self, row: int) -> str:
        if self.keys is None:
            return sound_of(float(self.tempos[row]), None, None)
        return sound_of(float(self.tempos[row]), float(self.keys[row]), float(self.modes[row]))

    def stats(self, row: int) -> tuple[int, float, float]:
        return int(self.codes[row]), float(self.tempos[row]), float(self.energy[row])

    def rows(
        self,
        seed: Sequence[int],
        length: int,
        *,
        arc: str = "flat",
        selection: str | None = None,
        ordered: bool = True,
    ) -> tuple[list[int], list[int], list[float], list[list[str]]]:
        """(rows in play order, relevance rank of each, scores, reasons) for catalogue rows ``seed``."""
        c = self.config
        if arc not in ARCS:
            raise InputError(f"arc must be one of {', '.join(ARCS)}, not {arc!r}")
        selection = selection or c.selection
        if selection == "auto":
            selection = "ranked" if self.ranked is not None else "fusion"
        fn = {"fusion": self.fused, "ranked": self.ranked}.get(selection) or self.recommend
        rows, scores, why = select_tracks(fn, seed, length, selection=selection, step=c.step)
        if not ordered or len(rows) < 2:
            return rows, list(range(len(rows))), scores, why
        r = np.asarray(rows, dtype=np.int64)
        start = self.stats(int(seed[-1])) if len(seed) else None
        order = order_tracks(
            self.codes[r], self.tempos[r], self.energy[r], arc=arc, start=start, config=c.order
        ).tolist()
        return ([rows[i] for i in order], order, [scores[i] for i in order], [why[i] for i in order])

    def make(
        self,
        seed: Sequence[int],
        length: int = 30,
        *,
        arc: str = "flat",
        selection: str | None = None,
        ordered: bool = True,
    ) -> list[PlaylistTrack]:
        """The playlist after ``seed`` rows as :class:`PlaylistTrack` entries with transition notes."""
        rows, ranks, scores, why = self.rows(seed, length, arc=arc, selection=selection, ordered=ordered)
        out = []
        prev = self.stats(int(seed[-1])) if len(seed) else None
        for pos, (r, rank, s, w) in enumerate(zip(rows, ranks, scores, why)):
            cur = self.stats(r)
            name, artist = self.names[r], self.artists[r]
            out.append(
                PlaylistTrack(
                    str(self.ids[r]),
                    float(s),
                    list(w),
                    None if name is None else str(name),
                    None if artist is None else str(artist),
                    position=pos,
                    relevance_rank=int(rank),
                    camelot=camelot_name(cur[0]),
                    tempo=_num(cur[1]),
                    energy=_num(cur[2]),
                    transition=transition_note(prev, cur),
                    summary=summarise(w, self.title, sound=self.sound(r)),
                )
            )
            prev = cur
        return out


def with_order(config: PlaylistConfig, **changes) -> PlaylistConfig:
    """A copy of ``config`` with ordering fields changed (``window=4``, ``w_arc=0`` ...)."""
    return dataclasses.replace(config, order=dataclasses.replace(config.order, **changes))


# ---------------------------------------------------------------------------------------------- rendering
_ID = re.compile(r"[A-Za-z0-9_\-]{4,}")


def name_tracks(text: str, name_of: Callable[[str], str | None]) -> str:
    """Track ids inside a reason replaced by “titles” (ids nobody knows stay as they are)."""

    def sub(m: re.Match) -> str:
        n = name_of(m.group(0))
        return f"“{n}”" if n else m.group(0)

    return _ID.sub(sub, text)


KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

#: technical reason (from the candidate sources) -> a sentence a person reads; ``{a}`` = the named track(s)
_PLAIN = (
    (
        re.compile(r"^next \{(?P<a>.+)\}->\S+ conf (?P<c>[\d.]+)"),
        "Often played right after {a} ({pct} of the time)",
    ),
    (
        re.compile(r"^rule \{(?P<a>.+)\}->\S+ conf (?P<c>[\d.]+)"),
        "Often in playlists with {a} ({pct} of them)",
    ),
    (
        re.compile(r"^played right after (?P<a>\S+) in (?P<n>\d+) histor"),
        "Played right after {a} in {n} playlist{s}",
    ),
    (re.compile(r"^often in the same playlists as (?P<a>\S+)"), "Often in the same playlists as {a}"),
    (
        re.compile(r"^in (?P<n>\d+) of the (?P<m>\d+) most similar histories"),
        "In {n} of the {m} playlists most like this one",
    ),
    (re.compile(r"^fits the taste of the recent tracks"), "Fits the taste of the recent tracks"),
    (re.compile(r"^neighbour of (?P<a>\S+) \(cos"), "Sounds close to {a}{sound}"),
    (re.compile(r"^close to the recent mix"), "Sounds like the recent mix{sound}"),
    (re.compile(r"^same artist as (?P<a>\S+)"), "Same artist as {a}"),
    (re.compile(r"^same album as (?P<a>\S+)"), "From the same album as {a}"),
    (re.compile(r"^same cluster \d+ as (?P<a>\S+)"), "In the same sound cluster as {a}"),
    (re.compile(r"^popular \((?P<n>\d+) plays\)"), "Popular: in {n} playlist{s}"),
)


#: indices into _PLAIN, most telling first: played right after, co-listening, same album/artist, sound
_PRIORITY = (0, 2, 1, 9, 8, 4, 3, 6, 7, 5, 10, 11)


def plain_reason(text: str, name_of: Callable[[str], str | None], *, sound: str = "") -> str:
    """One sentence for a technical reason, tracks named by title; unknown formats keep their text."""

    def names(ids: str) -> str:
        got = [f"“{name_of(i) or i}”" for i in ids.split(",")]
        return got[0] if len(got) == 1 else ", ".join(got[:-1]) + " and " + got[-1]

    for pattern, template in _PLAIN:
        m = pattern.match(text)
        if m:
            g = m.groupdict()
            pct = f"{round(100 * float(g['c']))} %" if g.get("c") else ""
            a = names(g["a"]) if g.get("a") else ""
            plural = "" if g.get("n") == "1" else "s"
            return template.format(a=a, n=g.get("n"), m=g.get("m"), pct=pct, sound=sound, s=plural)
    return name_tracks(text, name_of)


def sound_of(tempo: float | None, key, mode) -> str:
    """ " (tempo 124, A minor)" from a track's statistics, "" when unknown."""
    parts = []
    if tempo is not None and np.isfinite(tempo):
        parts.append(f"tempo {tempo:.0f}")
    if key is not None and np.isfinite(key) and 0 <= key <= 11 and mode is not None and np.isfinite(mode):
        parts.append(f"{KEY_NAMES[int(key)]} {'major' if mode >= 0.5 else 'minor'}")
    return f" ({', '.join(parts)})" if parts else ""


def summarise(
    reasons: Sequence[str], name_of: Callable[[str], str | None], *, sound: str = "", n: int = 2
) -> list[str]:
    """The first ``n`` distinct plain sentences of a track's reasons (most important first)."""

    def priority(text: str) -> int:  # what a person learns most from first: sequences, co-listening, sound
        for i, (pattern, _) in enumerate(_PLAIN):
            if pattern.match(text):
                return _PRIORITY.index(i) if i in _PRIORITY else len(_PLAIN)
        return len(_PLAIN)

    out: list[str] = []
    for r in sorted(reasons, key=priority):  # stable: the recommender's order among equals
        p = plain_reason(r, name_of, sound=sound)
        if p not in out:
            out.append(p)
        if len(out) == n:
            break
    return out


def describe(
    tracks: Sequence[PlaylistTrack], *, name_of: Callable[[str], str | None] | None = None, reasons: int = 2
) -> list[str]:
    """Printable lines: position, title, artist, key / tempo / energy, the transition, the first reasons."""
    name_of = name_of or (lambda _: None)
    out = []
    for t in tracks:
        title = t.track_name or t.track_id
        artist = f" — {t.track_artist}" if t.track_artist else ""
        bpm = f" {t.tempo:.0f} BPM" if t.tempo is not None else ""
        en = f" energy {t.energy:.2f}" if t.energy is not None else ""
        out.append(
            f"{t.position + 1:>2}. {title}{artist}  [{t.track_id}]  {t.camelot}{bpm}{en}  "
            f"(pick #{t.relevance_rank + 1})"
        )
        out.append(f"      ↳ {t.transition}")
        for why in (t.summary or [name_tracks(r, name_of) for r in t.reasons])[:reasons]:
            out.append(f"      · {why}")
    return out


# ---------------------------------------------------------------------------------------------- export
EXPORT_SUFFIXES = (".m3u", ".m3u8", ".json", ".csv")


def playlist_table(tracks: Sequence[PlaylistTrack]):
    """One row per track (position order) with every field; reasons joined by " | "."""
    import pandas as pd

    rows = []
    for t in tracks:
        d = t.to_dict()
        d["reasons"] = " | ".join(d["reasons"])
        rows.append(d)
    cols = [
        "position",
        "track_id",
        "track_name",
        "track_artist",
        "camelot",
        "tempo",
        "energy",
        "transition",
        "relevance_rank",
        "score",
        "reasons",
    ]
    return pd.DataFrame(rows, columns=cols)


def m3u_text(tracks: Sequence[PlaylistTrack], audio_files: dict | None = None) -> tuple[str, int]:
    """Extended M3U: an ``#EXTINF`` line and the absolute local audio path per track that has one.

    Tracks without a local file are kept as comments (``# track_id title``). Returns (text, files)."""
    from pathlib import Path

    audio_files = audio_files or {}
    lines = ["#EXTM3U"]
    found = 0
    for t in tracks:
        title = (f"{t.track_artist} - " if t.track_artist else "") + (t.track_name or t.track_id)
        path = audio_files.get(t.track_id)
        if path is None:
            lines.append(f"# {t.track_id} {title} (no local audio file)")
            continue
        found += 1
        lines.append(f"#EXTINF:-1,{title}")
        lines.append(str(Path(path).resolve()))
    return "\n".join(lines) + "\n", found


def write_playlist(tracks: Sequence[PlaylistTrack], path, *, audio_files: dict | None = None) -> str:
    """Write ``tracks`` atomically as M3U / JSON / CSV (by the suffix); returns a one-line summary."""
    from pathlib import Path

    from .io import write_json, write_table, write_text

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise InputError(
            f"{p}: playlist files end in {', '.join(EXPORT_SUFFIXES)}, not {suffix or 'nothing'}"
        )
    if suffix in (".m3u", ".m3u8"):
        text, found = m3u_text(tracks, audio_files)
        write_text(p, text)
        return f"{len(tracks)} tracks, {found} with a local audio path" + (
            "" if found else " (give --audio-dir to point entries at files)"
        )
    if suffix == ".json":
        write_json(p, {"playlist": [t.to_dict() for t in tracks]})
    else:
        write_table(playlist_table(tracks), p)
    return f"{len(tracks)} tracks"
