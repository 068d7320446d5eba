"""Co-occurrence rules mined on Spark (``pyspark.ml.fpm.FPGrowth``): same table as the mlxtend engine.

Selected by ``RulesConfig(engine="spark")`` (``rules mine --engine spark``, or
``[engine.recommend.sources.rules.mining] engine = "spark"``). The transactions built by
:func:`recsys.rules.mine_rules` go to Spark as one Arrow list column of item codes (one row per
transaction); FPGrowth mines the frequent itemsets and the single-consequent rules on the executors.
Spark's FPGrowth has no length cap, so rules from itemsets longer than ``max_len`` are dropped on the
cluster, with the lift threshold; only surviving rules are collected. The minimum count is
``ceil(min_support * n)`` in both engines; integer counts are recovered from Spark's ratios and
confidence, lift and support recomputed with mlxtend's arithmetic (count / n supports), so thresholds
see the same floats and the rows equal mlxtend's exactly. Next-track rules stay local (numpy, one pass
over the plays: :func:`recsys.rules.next_rules`).

The session: an active one is reused; else ``master`` (``RulesConfig.spark_master``, any URL), else the
master given by ``spark-submit``, else ``local[*]``.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import DependencyError, GuardError

log = logging.getLogger(__name__)


def spark_session(master: str | None = None) -> Any:
    """The active SparkSession, or a new one on ``master`` (default: spark-submit's, else ``local[*]``)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise DependencyError("the spark rules engine needs PySpark: pip install 'recsys[spark]'") from None
    active = SparkSession.getActiveSession()
    if active is not None and (not master or active.sparkContext.master == master):
        return active
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise DependencyError("the spark rules engine needs Java 17+ "
                              "(e.g. apt-get install -y openjdk-17-jre-headless)")
    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ  # spark-submit started this driver and set the master
    builder = SparkSession.builder.appName("recsys-rules")
    if master or not under_submit:
        builder = builder.master(master or "local[*]")
    local = (master or "local").startswith("local") and not under_submit
    if local:  # one machine: few shuffle partitions, no web UI
        builder = (builder.config("spark.sql.shuffle.partitions", str(2 * (os.cpu_count() or 2)))
                   .config("spark.ui.enabled", "false"))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyspark warns that pandas 3 is not fully supported (we pass Arrow)
        spark = (builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
                 .config("spark.ui.showConsoleProgress", "false").config("spark.log.level", "ERROR")
                 .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    log.info("spark session on %s in %.1f s", spark.sparkContext.master, time.perf_counter() - t0)
    return spark


def assoc_rules_spark(X: sp.csr_matrix, item_ids: np.ndarray, *, support: float, min_confidence: float,
                      min_lift: float, max_len: int, max_itemsets: int,
                      master: str | None = None) -> pd.DataFrame:
    """Co-occurrence rules (single-track consequents) of transactions ``X`` with Spark FPGrowth.

    Columns: antecedents, consequents, support, confidence, lift, count, kind (``recsys.rules`` table).
    """
    import pyarrow as pa
    from pyspark.ml.fpm import FPGrowth
    from pyspark.sql import functions as F

    spark = spark_session(master or None)
    n = X.shape[0]
    X = X.tocsr()
    # one row per transaction, its item codes as an Arrow list column (no per-row Python objects)
    items = pa.ListArray.from_arrays(pa.array(X.indptr.astype(np.int32)),
                                     pa.array(X.indices.astype(np.int32)))
    # thresholds a hair lower on the cluster, exact ones below with mlxtend's arithmetic (8/160 is 0.05 in
    # Spark but (8/n)/(160/n) < 0.05 in mlxtend: the same comparison must see the same float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyspark warns about pandas 3 on every conversion
        tx = spark.createDataFrame(pa.table({"items": items}))
        model = FPGrowth(itemsCol="items", minSupport=float(support),
                         minConfidence=float(min_confidence) * (1 - 1e-9)).fit(tx)
        freq = model.freqItemsets.cache()  # mined once: counted for the guard, then turned into rules
        try:
            n_itemsets = freq.filter(F.size("items") <= max_len).count()
            log.info("spark FPGrowth: %d transactions, %d frequent itemsets of length <= %d",
                     n, n_itemsets, max_len)
            if n_itemsets > max_itemsets:
                raise GuardError(f"spark FPGrowth found {n_itemsets:,} frequent itemsets (cap "
                                 f"{max_itemsets:,}): raise min_support or max_itemsets")
            rules = (model.associationRules
                     .filter((F.size("antecedent") <= max_len - 1)
                             & (F.col("lift") >= min_lift * (1 - 1e-9)))
                     .select("antecedent", F.col("consequent")[0].alias("consequent"), "support",
                             "confidence", "lift")
                     .toPandas())
        finally:
            freq.unpersist()
    # exact integer counts back from Spark's ratios, then mlxtend's formulas on supports count / n
    c_ac = np.rint(rules["support"].to_numpy(dtype=float) * n)
    c_a = np.rint(c_ac / rules["confidence"].to_numpy(dtype=float))
    c_c = np.rint(rules["confidence"].to_numpy(dtype=float) * n / rules["lift"].to_numpy(dtype=float))
    s_ac, s_a, s_c = c_ac / float(n), c_a / float(n), c_c / float(n)
    conf = (s_ac * n) / (s_a * n)
    lift = conf / s_c
    keep = (conf >= min_confidence) & (lift >= min_lift)
    rules, s_ac, conf, lift, c_ac = rules[keep], s_ac[keep], conf[keep], lift[keep], c_ac[keep]
    ids = np.asarray(item_ids, dtype=object).astype(str)
    return pd.DataFrame({"antecedents": [tuple(sorted(ids[np.asarray(a, dtype=np.int64)]))
                                         for a in rules["antecedent"]],
                         "consequents": [(ids[int(c)],) for c in rules["consequent"]],
                         "support": s_ac, "confidence": conf, "lift": lift,
                         "count": c_ac.astype(np.int64), "kind": "assoc"})
