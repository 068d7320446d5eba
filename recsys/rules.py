"""Association rules from listening histories, with guards, and an antecedent index for fast lookup.

Two kinds of rules, one table (``rules.parquet``: antecedents, consequents, support, confidence,
lift, count, kind):

- ``assoc``: mlxtend FP-growth (default) or Apriori over sparse one-hot transactions (a user's
  plays, a session, or a sliding window), then ``association_rules`` with confidence and lift
  thresholds; only single-track consequents are kept ("play X").
- ``next``: sequential co-occurrence, A played right before B (within ``next_gap`` plays), scored
  the same way (confidence = P(B next | A), lift = confidence / P(B)). These answer "what next".

Before mining, items below min_support are dropped and the number of frequent itemsets is bounded
from above (exact pair count, and for longer itemsets sum_t C(m_t, L) / min_count); if the bound
or the memory it implies exceeds the caps, :class:`GuardError` says which min_support would pass.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import GuardError, InputError

log = logging.getLogger(__name__)

RULE_COLUMNS = ["antecedents", "consequents", "support", "confidence", "lift", "count", "kind"]


@dataclass
class RulesConfig:
    """Rule mining parameters and guards."""

    algorithm: str = "fpgrowth"  # fpgrowth | apriori
    engine: str = "mlxtend"  # mlxtend (one process) | spark (pyspark FPGrowth, recsys/rules_spark.py)
    spark_master: str = ""  # "" = spark-submit's master, else local[*]; or any master URL (spark://host:7077)
    min_support: float = 0.0  # 0: auto: max(min_count / n, support_floor), raised until the guards pass
    support_floor: float = 0.001
    min_count: int = 2  # an itemset must occur in at least this many transactions
    min_confidence: float = 0.05
    min_lift: float = 1.0
    max_len: int = 3
    max_itemsets: int = 2_000_000  # guard: upper bound of frequent itemsets
    memory_limit_mb: int = 2048  # guard: estimated memory of mining
    transactions: str = "auto"  # auto (session if the column exists, else user) | user | session | window
    window: int = 10  # plays per window when transactions = "window"
    drop_skipped: bool = True
    sequential: bool = True  # also mine "next" rules
    next_gap: int = 1  # B counts as "next" after A if within this many plays
    # a next-track pair seen once is kept; scoring shrinks rare rules (count / (count + 1))
    next_min_count: int = 1
    max_rules_per_antecedent: int = 50


# ----------------------------------------------------------------------------- transactions

def _clean(histories: pd.DataFrame, config: RulesConfig) -> pd.DataFrame:
    if histories is None or len(histories) == 0:
        raise InputError("histories are empty: nothing to mine rules from")
    h = histories
    if config.drop_skipped and "skipped" in h.columns:
        h = h[~h["skipped"].astype(bool)]
    if len(h) == 0:
        raise InputError("histories are empty after dropping skipped plays")
    return h


def transaction_keys(histories: pd.DataFrame, config: RulesConfig) -> np.ndarray:
    """Transaction id per play: a user, a (user, session), or a (user, window of plays)."""
    mode = config.transactions
    if mode == "auto":
        mode = "session" if "session" in histories.columns else "user"
    users = histories["user_id"].astype(str).to_numpy()
    if mode == "user":
        return pd.factorize(users)[0]
    if mode == "session":
        if "session" not in histories.columns:
            raise InputError("transactions='session' needs a session column in the histories")
        return pd.factorize(pd.Series(users) + "\x1f" + histories["session"].astype(str).to_numpy())[0]
    if mode == "window":
        rank = histories.groupby("user_id", sort=False).cumcount().to_numpy() // max(1, config.window)
        return pd.factorize(pd.Series(users) + "\x1f" + pd.Series(rank).astype(str))[0]
    raise InputError(f"unknown transactions mode {config.transactions!r} (auto, user, session, window)")


def one_hot(tx: np.ndarray, items: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Sparse bool transactions x items matrix (duplicates collapsed)."""
    m = sp.csr_matrix((np.ones(len(tx), dtype=np.int32), (tx, items)), shape=(int(tx.max()) + 1, n_items))
    m.sum_duplicates()
    m.data[:] = 1
    return m.astype(bool)


# ----------------------------------------------------------------------------- guards

def estimate_itemsets(X: sp.csr_matrix, min_count: int, max_len: int) -> dict[int, float]:
    """Upper bound on frequent itemsets per length, for transactions X already pruned to frequent items.

    L=1 and L=2 are exact; L>=3 uses sum_t C(m_t, L) / min_count (each frequent L-itemset sits in at
    least min_count transactions) and, for L=3, the triangle bound of the frequent-pair graph.
    """
    m = np.asarray(X.sum(axis=1)).ravel().astype(np.float64)
    out = {1: float(X.shape[1])}
    if max_len < 2 or X.shape[1] < 2:
        return out
    Xi = X.astype(np.int32)
    C = (Xi.T @ Xi).tocsr()
    C.setdiag(0)
    C.eliminate_zeros()
    pairs = (C.data >= min_count).sum() / 2
    out[2] = float(pairs)
    deg = np.asarray((C >= min_count).sum(axis=1)).ravel().astype(np.float64)
    for L in range(3, max_len + 1):
        bound = float(np.sum([math.comb(int(k), L) for k in m if k >= L])) / max(min_count, 1)
        if L == 3:
            bound = min(bound, float(np.sum(deg * (deg - 1) / 2) / 3))
        out[L] = bound
        if bound < 1:
            break
    return out


def estimate_memory_mb(counts: dict[int, float], *, n_transactions: int, algorithm: str) -> float:
    """Rough bytes for mining: itemsets (~200 B each) + rule candidates from their splits (~300 B each)."""
    total = 0.0
    for L, n in counts.items():
        total += n * 200 + (n * (2 ** L - 2) * 300 if L >= 2 else 0)
    if algorithm == "apriori":
        # mlxtend's low-memory Apriori densifies transactions x candidate-items per prefix (1 byte per cell)
        total += n_transactions * counts.get(1, 0) * 1.0
    return total / 2 ** 20


def _pruned(X: sp.csr_matrix, support: float) -> tuple[sp.csr_matrix, np.ndarray, int]:
    n = X.shape[0]
    min_count = max(1, int(math.ceil(support * n - 1e-9)))
    counts = np.asarray(X.sum(axis=0)).ravel()
    keep = np.flatnonzero(counts >= min_count)
    return X[:, keep].tocsr(), keep, min_count


def check_guards(X: sp.csr_matrix, support: float, config: RulesConfig, *,
                 auto: bool = False) -> tuple[sp.csr_matrix, np.ndarray, dict]:
    """Prune to frequent items and refuse (GuardError) when mining would blow up; suggest a min_support.

    With ``auto`` (min_support not given by the user) the smallest passing doubling is used instead of
    refusing (``info["min_support"]`` says which); if none passes, no item is kept (no co-occurrence rules).
    """
    n = X.shape[0]

    def verdict(s: float):
        Xf, keep, mc = _pruned(X, s)
        # the pair matrix itself costs up to sum_t m_t^2 entries
        m = np.asarray(Xf.sum(axis=1)).ravel().astype(np.float64)
        if float(np.sum(m * m)) > 4e8:
            return Xf, keep, {"pairs_work": float(np.sum(m * m))}, False
        est = estimate_itemsets(Xf, mc, config.max_len)
        mem = estimate_memory_mb(est, n_transactions=n, algorithm=config.algorithm)
        ok = sum(est.values()) <= config.max_itemsets and mem <= config.memory_limit_mb
        return Xf, keep, {"itemsets": est, "memory_mb": mem}, ok

    Xf, keep, info, ok = verdict(support)
    if ok:
        return Xf, keep, {**info, "min_support": support}
    s = support
    suggestion = None
    for _ in range(24):
        s = min(1.0, s * 2 if s > 0 else 1.0 / n)
        if verdict(s)[3]:
            suggestion = s
            break
        if s >= 1.0:
            break
    what = (f"about {sum(info['itemsets'].values()):,.0f} itemsets (cap {config.max_itemsets:,}), "
            f"~{info['memory_mb']:,.0f} MB (cap {config.memory_limit_mb:,} MB)" if "itemsets" in info
            else f"{info['pairs_work']:,.0f} pair counts")
    if auto:
        if suggestion is not None:
            log.warning("rule mining: min_support %.4g would need %s; using min_support %.4g instead "
                        "(set min_support to choose)", support, what, suggestion)
            Xf, keep, info, _ = verdict(suggestion)
            return Xf, keep, {**info, "min_support": suggestion}
        log.warning("rule mining: no min_support keeps co-occurrence mining under the caps (%s); "
                    "only next-track rules are mined", what)
        return X[:, :0].tocsr(), np.zeros(0, dtype=np.int64), {"min_support": None}
    hint = (f"raise min_support to {suggestion:.4g} or more" if suggestion is not None
            else "raise min_support, lower max_len, or use shorter transactions")
    if config.algorithm == "apriori":
        hint += " (or use --algorithm fpgrowth)"
    raise GuardError(f"rule mining at min_support {support:.4g}, max_len {config.max_len} "
                     f"would need {what}: {hint}")


# ----------------------------------------------------------------------------- mining

def _assoc_rules(X: sp.csr_matrix, item_ids: np.ndarray, support: float, config: RulesConfig, *,
                 auto: bool = False) -> pd.DataFrame:
    from mlxtend.frequent_patterns import apriori, association_rules, fpgrowth

    n = X.shape[0]
    Xf, keep, info = check_guards(X, support, config, auto=auto)
    log.info("mining %d transactions x %d frequent items: %s", n, len(keep), info)
    if Xf.shape[1] < 2:
        return pd.DataFrame(columns=RULE_COLUMNS)
    support = info["min_support"]
    cols = [str(i) for i in range(Xf.shape[1])]
    df = pd.DataFrame.sparse.from_spmatrix(Xf, columns=cols)
    if config.algorithm == "fpgrowth":
        freq = fpgrowth(df, min_support=support, use_colnames=False, max_len=config.max_len)
    elif config.algorithm == "apriori":
        freq = apriori(df, min_support=support, use_colnames=False, max_len=config.max_len, low_memory=True)
    else:
        raise InputError(f"unknown algorithm {config.algorithm!r} (fpgrowth or apriori)")
    if len(freq) == 0 or freq["itemsets"].map(len).max() < 2:
        return pd.DataFrame(columns=RULE_COLUMNS)
    rules = association_rules(freq, num_itemsets=n, metric="confidence", min_threshold=config.min_confidence,
                              return_metrics=["support", "confidence", "lift"])
    rules = rules[(rules["consequents"].map(len) == 1) & (rules["lift"] >= config.min_lift)]
    if len(rules) == 0:
        return pd.DataFrame(columns=RULE_COLUMNS)
    # tuples, not lists: the garbage collector stops tracking tuples of strings (matters at 100k+ rules)
    ante = rules["antecedents"].map(lambda s: tuple(sorted(str(item_ids[keep[int(i)]]) for i in s)))
    cons = rules["consequents"].map(lambda s: (str(item_ids[keep[int(next(iter(s)))]]),))
    return pd.DataFrame({"antecedents": ante.to_numpy(), "consequents": cons.to_numpy(),
                         "support": rules["support"].to_numpy(dtype=float),
                         "confidence": rules["confidence"].to_numpy(dtype=float),
                         "lift": rules["lift"].to_numpy(dtype=float),
                         "count": np.rint(rules["support"].to_numpy(dtype=float) * n).astype(np.int64),
                         "kind": "assoc"})


def next_rules(histories: pd.DataFrame, item_codes: np.ndarray, item_ids: np.ndarray,
               config: RulesConfig) -> pd.DataFrame:
    """Sequential rules A -> B where B follows A within ``next_gap`` plays of the same user."""
    users = pd.factorize(histories["user_id"].astype(str))[0]
    a_list, b_list = [], []
    for gap in range(1, max(1, config.next_gap) + 1):
        same = users[gap:] == users[:-gap]
        a, b = item_codes[:-gap][same], item_codes[gap:][same]
        diff = a != b
        a_list.append(a[diff])
        b_list.append(b[diff])
    a = np.concatenate(a_list) if a_list else np.zeros(0, np.int64)
    b = np.concatenate(b_list) if b_list else np.zeros(0, np.int64)
    if len(a) == 0:
        return pd.DataFrame(columns=RULE_COLUMNS)
    n_items = len(item_ids)
    M = sp.coo_matrix((np.ones(len(a), dtype=np.int64), (a, b)), shape=(n_items, n_items)).tocsr()
    M.sum_duplicates()
    total = float(M.sum())
    from_a = np.asarray(M.sum(axis=1)).ravel().astype(np.float64)
    to_b = np.asarray(M.sum(axis=0)).ravel().astype(np.float64) / total
    coo = M.tocoo()
    cnt = coo.data.astype(np.float64)
    conf = cnt / from_a[coo.row]
    lift = conf / to_b[coo.col]
    keep = (cnt >= config.next_min_count) & (conf >= config.min_confidence) & (lift >= config.min_lift)
    r, c, cnt, conf, lift = coo.row[keep], coo.col[keep], cnt[keep], conf[keep], lift[keep]
    return pd.DataFrame({"antecedents": [(str(item_ids[i]),) for i in r],
                         "consequents": [(str(item_ids[j]),) for j in c],
                         "support": cnt / total, "confidence": conf, "lift": lift,
                         "count": cnt.astype(np.int64), "kind": "next"})


def mine_rules(histories: pd.DataFrame, config: RulesConfig | None = None) -> pd.DataFrame:
    """Mine association (and sequential) rules from a histories table; returns the rules table."""
    config = config or RulesConfig()
    if config.algorithm not in ("fpgrowth", "apriori"):
        raise InputError(f"unknown algorithm {config.algorithm!r} (fpgrowth or apriori)")
    h = _clean(histories, config)
    codes, item_ids = pd.factorize(h["track_id"].astype(str))
    item_ids = np.asarray(item_ids, dtype=object)
    tx = transaction_keys(h, config)
    X = one_hot(tx, codes, len(item_ids))
    n = X.shape[0]
    support = config.min_support or max(config.min_count / n, config.support_floor)
    if config.engine not in ("mlxtend", "spark"):
        raise InputError(f"unknown rules engine {config.engine!r} (mlxtend or spark)")
    if config.engine == "spark":
        from .rules_spark import assoc_rules_spark

        parts = [assoc_rules_spark(X, item_ids, support=support, min_confidence=config.min_confidence,
                                   min_lift=config.min_lift, max_len=config.max_len,
                                   max_itemsets=config.max_itemsets, master=config.spark_master)]
    else:
        parts = [_assoc_rules(X, item_ids, support, config, auto=not config.min_support)]
    if config.sequential:
        parts.append(next_rules(h, codes, item_ids, config))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            RULE_COLUMNS, [object, object, float, float, float, np.int64, object])})
    rules = pd.concat(parts, ignore_index=True)
    rules["_key"] = rules["antecedents"].map(lambda a: "\x1f".join(a)) + "|" + rules["kind"]
    # ties broken by track id: the same rows whatever the engine
    rules["_c"] = rules["consequents"].map(lambda c: c[0])
    rules = rules.sort_values(["_key", "confidence", "lift", "_c"], ascending=[True, False, False, True],
                              kind="stable")
    rules = rules.groupby("_key", sort=False).head(config.max_rules_per_antecedent)
    return (rules.drop(columns=["_key", "_c"])
            .sort_values(["confidence", "lift"], ascending=False, kind="stable").reset_index(drop=True))


# ----------------------------------------------------------------------------- lookup

class RuleIndex:
    """Rules by antecedent item: which rules fire for a set of recent tracks, in microseconds.

    Antecedents and consequents are stored as catalogue row numbers; ``item_rules`` is a CSR
    item -> rule ids map, so a lookup touches only the rules that mention a recent track.
    """

    def __init__(self, rules: pd.DataFrame, row_of: dict[str, int], n_items: int) -> None:
        ante, cons, keep = [], [], []
        for i, (a, c) in enumerate(zip(rules["antecedents"].tolist(), rules["consequents"].tolist())):
            ra = [row_of.get(str(x)) for x in a]
            rc = row_of.get(str(c[0])) if len(c) else None
            if rc is None or any(x is None for x in ra):
                continue
            ante.append(ra)
            cons.append(rc)
            keep.append(i)
        self.n_rules = len(keep)
        sub = rules.iloc[keep]
        self.confidence = sub["confidence"].to_numpy(dtype=np.float32)
        self.lift = sub["lift"].to_numpy(dtype=np.float32)
        count = sub["count"].to_numpy(dtype=np.float32)
        #: confidence shrunk toward 0 for rules seen few times (a pair seen once scores half its confidence)
        self.strength = self.confidence * count / (count + 1.0)
        self.kind_next = (sub["kind"].astype(str) == "next").to_numpy()
        self.consequent = np.asarray(cons, dtype=np.int64)
        self.ante_len = np.asarray([len(a) for a in ante], dtype=np.int32)
        flat = np.asarray([x for a in ante for x in a], dtype=np.int64)
        rule_of = np.repeat(np.arange(self.n_rules), self.ante_len)
        #: antecedent items of rule r: ante_items[ante_ptr[r]:ante_ptr[r + 1]]
        #: (flat arrays: no per-rule objects)
        self.ante_items = flat
        self.ante_ptr = np.r_[0, np.cumsum(self.ante_len)].astype(np.int64)
        M = sp.csr_matrix((np.ones(len(flat), dtype=np.int8), (flat, rule_of)),
                          shape=(n_items, max(self.n_rules, 1)))
        self.indptr, self.indices = M.indptr, M.indices

    def antecedent(self, rid: int) -> np.ndarray:
        return self.ante_items[self.ante_ptr[rid]:self.ante_ptr[rid + 1]]

    def match(self, items) -> np.ndarray:
        """Ids of rules whose whole antecedent is among ``items`` (distinct catalogue rows)."""
        parts = [self.indices[self.indptr[i]:self.indptr[i + 1]]
                 for i in items if 0 <= i < len(self.indptr) - 1]
        parts = [p for p in parts if len(p)]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        cand = np.concatenate(parts)
        ids, counts = np.unique(cand, return_counts=True)
        return ids[counts >= self.ante_len[ids]]


def read_rules(path) -> pd.DataFrame:
    """Read a rules table written by :func:`mine_rules` (Parquet keeps the list columns)."""
    from .io import read_table

    df = read_table(path) if not str(path).endswith(".parquet") else pd.read_parquet(path)
    missing = [c for c in RULE_COLUMNS if c not in df.columns]
    if missing:
        from .errors import SchemaError

        raise SchemaError(f"{path}: not a rules table (missing {', '.join(missing)})")
    df["antecedents"] = df["antecedents"].map(lambda a: tuple(str(x) for x in a))
    df["consequents"] = df["consequents"].map(lambda a: tuple(str(x) for x in a))
    return df
