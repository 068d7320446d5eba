"""Engine commands: build-index, recommend, similar, rules mine, simulate-users, evaluate."""
from __future__ import annotations

import json
import warnings

import click

from ..validate import MAX_K
from .common import FORCE_DIR, FORCE_FILE


def _blocks(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [b.strip() for b in value.split(",") if b.strip()]


def _namer(eng):
    """Replace track ids inside reason strings by their names (the JSON output keeps ids)."""
    import re

    names = eng.tracks.names

    def sub(match):
        tid = match.group(0)
        row = eng.tracks.get(tid)
        if row is not None and isinstance(names[row], str) and names[row]:
            return f"“{names[row]}”"
        return tid

    return lambda text: re.sub(r"[A-Za-z0-9_\-]{6,}", sub, text)


def _print_recs(recs, as_json: bool, header: str | None = None, eng=None) -> None:
    """Numbered tracks with their reasons (names instead of ids), or JSON; a short list says why on stderr."""
    note = getattr(recs, "note", None)
    if note:
        click.echo(f"note: {note}", err=True)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in recs], indent=2))
        return
    if header:
        click.echo(header)
    name_of = _namer(eng) if eng is not None else (lambda t: t)
    for i, r in enumerate(recs, 1):
        name = r.track_name or r.track_id
        artist = f" — {r.track_artist}" if r.track_artist else ""
        click.echo(f"{i:>2}. {name}{artist}  [{r.track_id}]  score {r.score:.3f}")
        for why in r.reasons:
            click.echo(f"      · {name_of(why)}")


def _load(index: str):
    from ..engine import Engine

    return Engine.load(index)


def _with_warnings(fn):
    """Run fn, echoing library warnings (unknown ids) on stderr as 'warning: ...'."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    return result


#: Upper bound of synthetic users (the simulator holds every play in memory).
MAX_USERS = 1_000_000


def _rules(name: str):
    """A RulesConfig default (CLI defaults are read from the dataclass, never restated)."""
    from ..config import option_default
    from ..rules import RulesConfig

    return option_default(RulesConfig, name)


def register(main: click.Group) -> None:
    """Add the engine commands to the top-level ``recsys`` group."""

    @main.command("build-index")
    @click.option("--catalog", type=click.Path(dir_okay=False), help="Track table (CSV/TSV/Parquet).")
    @click.option("--histories", type=click.Path(dir_okay=False),
                  help="Histories: user_id, position, track_id.")
    @click.option("--simulate-users", type=click.IntRange(0, MAX_USERS), default=None,
                  help="Synthetic users to generate when no --histories are given "
                       "(default 500; 0 = content only).")
    @click.option("--features", type=click.Path(file_okay=False),
                  help="Audio features dir (one Parquet per block).")
    @click.option("--stats", "stats_file", type=click.Path(dir_okay=False),
                  help="Fill missing statistics from a table (track_id + any of the 12 statistics, e.g. "
                       "FEATURES/audiostats.parquet from `features extract --mapping matches.csv`).")
    @click.option("--blocks",
                  help="Comma-separated blocks for the embedding (default: tabular + all in --features).")
    @click.option("--genre-model", type=click.Path(file_okay=False),
                  help="Trained genre model dir (for unlabelled catalogues).")
    @click.option("--no-genre-probs", is_flag=True, help="Tabular block without genre-model probabilities.")
    @click.option("--config", type=click.Path(dir_okay=False), help="TOML file with an [engine] table.")
    @click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None,
                  help="Seed for clustering, the simulator and the ranker (default: the config's).")
    @click.option("--cache", "cache_dir", type=click.Path(file_okay=False),
                  help="Cache dir: reuse the genre model's out-of-fold probabilities across builds.")
    @click.option("--out", required=True, type=click.Path(file_okay=False), help="Index directory to write.")
    @click.option("--force", is_flag=True, help=FORCE_DIR)
    @click.option("--on-conflict", type=click.Choice(["error", "first"]), default="error", show_default=True,
                  help="Rows of one track_id that name different songs: stop with an error, "
                       "or keep the first.")
    def build_index(catalog, histories, simulate_users, features, stats_file, blocks, genre_model,
                    no_genre_probs, config, seed, cache_dir, out, force, on_conflict):
        """Build embeddings, FAISS index, clusters and rules into an index directory."""
        from pipelines.build_index import format_summary, run

        from ..io import output_lock

        if catalog is None and features is None:
            raise click.UsageError("give --catalog and/or --features")
        with output_lock(out):  # a second build into the same --out stops here, before any work
            eng = _with_warnings(lambda: run(catalog=catalog, out=out, histories=histories,
                                             simulate_users=simulate_users, features=features,
                                             blocks=_blocks(blocks), genre_model=genre_model,
                                             config=config, seed=seed, no_genre_probs=no_genre_probs,
                                             cache_dir=cache_dir, force=force, on_conflict=on_conflict,
                                             stats=stats_file))
        click.echo(format_summary(eng, out))

    @main.command("recommend")
    @click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False),
                  help="Index directory written by `recsys build-index`.")
    @click.option("--recent", multiple=True, help="A recently played track id (repeat, oldest first).")
    @click.option("--user", "user_id", help="A user id known to the index (its last plays are used).")
    @click.option("-k", "k", type=click.IntRange(1, MAX_K), default=10, show_default=True,
                  help="How many tracks to recommend.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def recommend(index_dir, recent, user_id, k, as_json):
        """What to play next after the recent tracks, with reasons."""
        if not recent and not user_id:
            raise click.UsageError("give at least one --recent ID or --user ID")
        eng = _load(index_dir)
        recs = _with_warnings(lambda: eng.recommend(list(recent), k=k, user_id=user_id))
        _print_recs(recs, as_json, None if as_json else f"next after {len(recent) or 'user ' + str(user_id)}"
                    f"{' recent track(s)' if recent else ''}:", eng)

    @main.command("similar")
    @click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False),
                  help="Index directory written by `recsys build-index`.")
    @click.option("--track", "track_id", required=True, help="Track id to find neighbours of.")
    @click.option("-k", "k", type=click.IntRange(1, MAX_K), default=10, show_default=True,
                  help="How many similar tracks.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def similar(index_dir, track_id, k, as_json):
        """Nearest tracks by embedding (and the track's cluster)."""
        eng = _load(index_dir)
        recs = eng.similar(track_id, k)
        _print_recs(recs, as_json,
                    None if as_json else f"similar to {track_id} (cluster {eng.cluster_of(track_id)}):", eng)

    @main.group("rules")
    def rules():
        """Association rules from listening histories."""

    @rules.command("mine")
    @click.option("--histories", required=True, type=click.Path(dir_okay=False),
                  help="Histories table: user_id, position, track_id (CSV/Parquet).")
    @click.option("--out", required=True, type=click.Path(dir_okay=False), help="rules.parquet (or .csv)")
    @click.option("--algorithm", type=click.Choice(["fpgrowth", "apriori"]), default=_rules("algorithm"),
                  show_default=True, help="Frequent-itemset algorithm (mlxtend).")
    @click.option("--min-support", type=click.FloatRange(0, 1), default=_rules("min_support"),
                  show_default=True, help="Share of transactions an itemset needs; 0 = auto "
                                          "(raised until the guards pass).")
    @click.option("--min-count", type=click.IntRange(1), default=_rules("min_count"), show_default=True,
                  help="Transactions an itemset needs at least.")
    @click.option("--min-confidence", type=click.FloatRange(0, 1), default=_rules("min_confidence"),
                  show_default=True, help="Keep rules at least this confident.")
    @click.option("--min-lift", type=click.FloatRange(0), default=_rules("min_lift"), show_default=True,
                  help="Keep rules with at least this lift.")
    @click.option("--max-len", type=click.IntRange(2, 10), default=_rules("max_len"), show_default=True,
                  help="Largest itemset (antecedent + consequent).")
    @click.option("--transactions", type=click.Choice(["auto", "user", "session", "window"]),
                  default=_rules("transactions"), show_default=True,
                  help="What one basket is: a user's plays, a session, or a sliding window.")
    @click.option("--window", type=click.IntRange(2, 10_000), default=_rules("window"), show_default=True,
                  help="Plays per window with --transactions window.")
    @click.option("--memory-limit-mb", type=click.IntRange(16, 1_000_000), default=_rules("memory_limit_mb"),
                  show_default=True, help="Guard: refuse mining estimated to need more memory.")
    @click.option("--max-itemsets", type=click.IntRange(1, 1_000_000_000), default=_rules("max_itemsets"),
                  show_default=True, help="Guard: refuse mining estimated to find more itemsets.")
    @click.option("--no-sequential", is_flag=True, help="Only co-occurrence rules, no next-track rules.")
    @click.option("--engine", type=click.Choice(["mlxtend", "spark"]), default="mlxtend", show_default=True,
                  help="spark: pyspark FPGrowth (co-occurrence rules; next-track rules stay local). "
                       "See docs/scale.md.")
    @click.option("--spark-master", default="", metavar="URL",
                  help="Spark master for --engine spark (default: spark-submit's, else local[*]), "
                       "e.g. spark://host:7077.")
    @click.option("--force", is_flag=True, help=FORCE_FILE)
    def mine(histories, out, algorithm, min_support, min_count, min_confidence, min_lift, max_len,
             transactions, window, memory_limit_mb, max_itemsets, no_sequential, engine, spark_master, force):
        """Mine rules with FP-growth (default) or Apriori; guarded against blow-up."""
        import time

        from ..io import check_output_file, write_table
        from ..rules import RulesConfig, mine_rules
        from ..users import read_histories

        check_output_file(out, inputs=[histories], force=force)
        cfg = RulesConfig(algorithm=algorithm, min_support=min_support, min_count=min_count,
                          min_confidence=min_confidence, min_lift=min_lift, max_len=max_len,
                          transactions=transactions, window=window, memory_limit_mb=memory_limit_mb,
                          max_itemsets=max_itemsets, sequential=not no_sequential, engine=engine,
                          spark_master=spark_master)
        h = read_histories(histories)
        t0 = time.perf_counter()
        table = mine_rules(h, cfg)
        dt = time.perf_counter() - t0
        write_table(table, out, output=True, force=force)
        n_next = int((table["kind"] == "next").sum()) if len(table) else 0
        click.echo(f"{out}: {len(table):,} rules ({len(table) - n_next:,} co-occurrence, "
                   f"{n_next:,} next-track) "
                   f"from {h['user_id'].nunique():,} users, {len(h):,} plays in {dt:.1f} s")

    @main.command("simulate-users")
    @click.option("--catalog", required=True, type=click.Path(dir_okay=False),
                  help="Catalogue the synthetic users listen to.")
    @click.option("--users", "n_users", type=click.IntRange(1, MAX_USERS), default=500, show_default=True,
                  help="How many synthetic users to generate.")
    @click.option("--out", required=True, type=click.Path(dir_okay=False),
                  help="Histories table to write (Parquet or CSV).")
    @click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
                  help="Seed of the simulator.")
    @click.option("--index", "index_dir", type=click.Path(file_okay=False),
                  help="Group tracks by this index's clusters (default: parent genres).")
    @click.option("--force", is_flag=True, help=FORCE_FILE)
    def simulate(catalog, n_users, out, seed, index_dir, force):
        """Write reproducible synthetic listening histories."""
        import dataclasses

        from ..catalog import load_catalog
        from ..io import check_output_file, write_table
        from ..users import SimulationConfig, simulate_users

        check_output_file(out, inputs=[catalog, index_dir], force=force)
        cat = load_catalog(catalog)
        groups = None
        if index_dir:
            eng = _load(index_dir)
            rows = cat["track_id"].map(eng.tracks.row_of)
            if rows.isna().any():
                raise click.UsageError(f"{int(rows.isna().sum())} catalogue tracks are not in {index_dir}")
            groups = eng.clusters[rows.to_numpy(dtype=int)]
        cfg = dataclasses.replace(SimulationConfig(), n_users=n_users, seed=seed)
        h = simulate_users(cat, cfg, groups=groups, progress=True)
        write_table(h, out, output=True, force=force)
        click.echo(f"{out}: {n_users:,} users, {len(h):,} plays ({int(h['skipped'].sum()):,} skipped), "
                   f"{h['track_id'].nunique():,} distinct tracks, seed {seed}")

    @main.command("evaluate")
    @click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False),
                  help="Index directory written by `recsys build-index`.")
    @click.option("--histories", required=True, type=click.Path(dir_okay=False),
                  help="Histories to hold the last play of each user out of.")
    @click.option("-k", "--k", "k", type=click.IntRange(1, MAX_K), default=10, show_default=True,
                  help="Cut-off of HitRate/MRR/NDCG.")
    @click.option("--max-users", type=click.IntRange(0), default=0, show_default=True,
                  help="Evaluate a seeded sample of users (0 = all).")
    @click.option("--recent", "n_recent", type=click.IntRange(0, 10_000), default=0, show_default=True,
                  help="Recent plays per user fed to the recommenders (0 = config).")
    @click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
                  help="Seed of the user sample.")
    @click.option("--split", "protocol", type=click.Choice(["last", "users"]), default="last",
                  show_default=True, help="last: hold each user's last play out; users: hold whole "
                                          "users out (no source, rule or ranker sees them; target = last "
                                          "play).")
    @click.option("--test-share", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
                  show_default=True, help="With --split users: seeded share of the users held out.")
    @click.option("--test-histories", type=click.Path(dir_okay=False), default=None,
                  help="Held-out users from their own file (implies --split users; "
                       "their ids leave training).")
    @click.option("--baselines/--no-baselines", default=None,
                  help="Also item-kNN, V-SKNN, EASE and ALS, each tuned on held-out training users "
                       "(default: on with --split users).")
    @click.option("--ablate", is_flag=True,
                  help="Block ablation: hybrid and content with all blocks, each block removed, each alone.")
    @click.option("--ablate-clusters", type=click.Choice(["recompute", "keep"]), default="recompute",
                  show_default=True, help="With --ablate: re-run k-means on each variant's embeddings, "
                                          "or keep the built clusters.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.option("--task", type=click.Choice(["next", "continuation"]), default="next", show_default=True,
                  help="next: leave-last-out next track; continuation: held-out playlists (--histories "
                       "never in the index) continued from their first tracks (recsys/continuation.py).")
    @click.option("--valid", "valid_histories", type=click.Path(dir_okay=False),
                  help="With --task continuation: other held-out playlists that choose iterative or "
                       "single-shot selection before the test.")
    @click.option("--length", type=click.IntRange(1, MAX_K), default=50, show_default=True,
                  help="With --task continuation: tracks each method returns.")
    def evaluate_cmd(index_dir, histories, k, max_users, n_recent, seed, protocol, test_share, test_histories,
                     baselines, ablate, ablate_clusters, as_json, task, valid_histories, length):
        """HitRate/MRR/NDCG@K, coverage: ranked hybrid, old blend, every source, popularity, baselines."""
        from ..evaluate import evaluate

        eng = _load(index_dir)
        if task == "continuation":  # playlist continuation lives in recsys/continuation.py
            from .playlist import print_continuation

            print_continuation(eng, histories, valid=valid_histories, n=length,
                               max_playlists=max_users or None, seed=seed, as_json=as_json)
            return
        if ablate:
            _print_ablation(eng, histories, k=k, max_users=max_users or None, seed=seed,
                            n_recent=n_recent or None, clusters=ablate_clusters, as_json=as_json)
            return
        table, info = evaluate(eng, histories, k=k, max_users=max_users or None, seed=seed,
                               n_recent=n_recent or None, progress=True, protocol=protocol,
                               test_share=test_share, test_histories=test_histories, baselines=baselines)
        if as_json:
            click.echo(json.dumps({"info": info, "results": table.to_dict(orient="records")}, indent=2))
            return
        what = ("leave-last-out" if info["protocol"] == "last" else
                f"held-out users (none seen in training; {info['train_users']:,} training users), last play")
        click.echo(f"{what} on {info['test_users']:,} users ({info['train_plays']:,} training plays, "
                   f"{info['rules']:,} rules mined from training only, "
                   f"{info['n_recent']} recent plays per user); "
                   f"held-out tracks never played in training: {info['cold_targets']:.1%} "
                   f"({info['n_cold_targets']})")
        if info["unknown_plays"]:
            click.echo(f"warning: {info['unknown_plays']:,} plays of tracks not in the index were ignored",
                       err=True)
        click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        from ..rank import describe

        lat = info["latency"].get("hybrid", {})
        click.echo(f"hybrid: {describe(info['recommender'])}; "
                   f"sources + ranker fitted in {info['fit_seconds']:.1f} s")
        for name, rep in info.get("baselines", {}).get("sources", {}).items():
            chosen = ", ".join(f"{key}={v}" for key, v in rep.items()
                               if key not in ("hr@10", "mrr@10", "tried", "seconds"))
            click.echo(f"{name} (tuned): {chosen} "
                       f"(validation HR@10 {rep['hr@10']:.4f}, {rep['tried']} tried)")
        p50, p99 = lat.get("p50_ms", 0), lat.get("p99_ms", 0)
        speed = (f"recommend_many {p50:.2f} ms a context (median over batches of {lat['batch']})"
                 if lat.get("batch") else f"recommend latency p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        click.echo(f"candidate recall (held-out track among the hybrid's candidates): "
                   f"{info['candidate_recall']:.1%}; {speed}")


def _print_ablation(eng, histories, *, k, max_users, seed, n_recent, clusters, as_json) -> None:
    """`recsys evaluate --ablate`: one table row per block subset, all on one split."""
    from ..evaluate import ablate

    table, info = ablate(eng, histories, k=k, max_users=max_users, seed=seed, n_recent=n_recent,
                         clusters=clusters, progress=True)
    if as_json:
        click.echo(json.dumps({"info": info, "ablation": table.to_dict(orient="records")}, indent=2))
        return
    dims = ", ".join(f"{n} {d}" for n, d in info["dims"].items())
    click.echo(f"block ablation, leave-last-out on {info['test_users']:,} users "
               f"({info['train_plays']:,} training plays, "
               f"{info['rules']:,} rules mined from training only, {info['n_recent']} recent plays per user)")
    click.echo(f"blocks (dims): {dims}; per row: dropped blocks zeroed in the stored embeddings, "
               f"re-normalised, exact flat FAISS index rebuilt; clusters "
               + (f"recomputed (k-means, k={info['n_clusters']}, same seed)"
                  if info["clusters"] == "recompute"
                  else "kept from the build (all blocks)")
               + "; every variant's sources, rules included, fitted on the same training plays")
    if info["unknown_plays"]:
        click.echo(f"warning: {info['unknown_plays']:,} plays of tracks not in the index were ignored",
                   err=True)
    click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    click.echo("cos_change: mean 1 - cosine to the all-blocks embedding; "
               "emptied: tracks left with no block (zero vector)")
