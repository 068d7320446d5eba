"""The Engine facade: build (catalogue + blocks -> embeddings, FAISS, clusters, rules), save, load, recommend.

On disk (one directory, swapped in atomically): ``manifest.json`` (format version, blocks, config,
counts, file sizes, embedding parameters), ``tracks.parquet``, ``embeddings.npy``, ``faiss.index``,
``clusters.npy``, ``centroids.npy``, ``rules.parquet``, ``users.parquet`` (each user's last plays),
``histories.parquet`` (only when simulated) and ``genre_model/`` when a genre model was trained.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import threads
from .blocks import Block, available_blocks, build_block, build_tabular, check_names, extend_catalog
from .blocks.tabular import label_classes
from .catalog import fill_stats, load_catalog, missing_stats_note, read_stats, stats_coverage
from .embedding import EmbeddingBuilder, EmbeddingConfig
from .errors import IndexFormatError, InputError, ModelError
from .index import IndexConfig, TrackIndex, load_npy
from .io import artifact_dir, check_output_dir, read_manifest, write_table
from .projection import Projection, ProjectionConfig, load_map, save_map
from .rank import HybridRecommender, audio_stats, fit_hybrid
from .recommend import Recommendation, RecommendConfig, Recommendations
from .schema import STATS, TRACK_COLUMNS
from .rules import RULE_COLUMNS, RuleIndex, RulesConfig, mine_rules
from .sources.base import Content, Interactions, SourceData
from .users import SimulationConfig, read_histories
from .validate import (check_build_args, check_fitted, check_int, check_k, check_path, check_track_ids,
                       check_weights)
from .users import simulate_users as simulate_users_fn

log = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 3: candidate sources + LightGBM ranker files (recommender.json, ranker.txt, source_*)
# 2: manifest with a SHA-256 per file (io.artifact_dir)
INDEX_KIND = "recsys.index"


@dataclass
class EngineConfig:
    """Every tunable of the engine, one nested dataclass per module (TOML: ``[engine]`` with sub-tables)."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)  # the 2-D map (map.parquet)
    genre_probs: bool = True  # add genre-model probabilities to the tabular block when possible
    genre_folds: int = 3
    genre_model: str = "lightgbm"
    genre_params: dict = field(default_factory=lambda: {"n_estimators": 200})
    genre_max_rows: int = 40_000  # above this many labelled tracks each genre model fits on a sample
    user_recent: int = 100  # plays kept per user for recommend(user_id=...)


class _Steps:
    """A progress bar over build steps that names the step in progress ("genre probabilities (3 folds)")."""

    def __init__(self, total: int, enabled: bool) -> None:
        from .progress import bar

        self.bar = bar(total=total, desc="build-index", unit="step", enabled=enabled)
        self.started = False

    def __call__(self, name: str) -> None:
        """Close the previous step and start ``name``."""
        if self.started:
            self.bar.update()
        self.started = True
        self.bar.set_description(f"build-index: {name}")
        log.info("build-index: %s", name)

    def close(self) -> None:
        """Finish the last step."""
        if self.started:
            self.bar.update()
        self.bar.close()


class Engine:
    """Hybrid recommender over one catalogue. Build with :meth:`build`, reopen with :meth:`load`."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()

    # ------------------------------------------------------------------ build
    @classmethod
    @threads.limited  # BLAS/OpenMP limits inside the library: the API costs what the CLI costs
    def build(cls, catalog=None, *, histories=None, simulate_users: int | None = None,
              out: str | os.PathLike | None = None,
              blocks: Sequence[str] | None = None, features: str | os.PathLike | None = None,
              genre_model: str | os.PathLike | None = None, config: EngineConfig | None = None,
              seed: int | None = None, progress: bool = False, cache_dir: str | os.PathLike | None = None,
              force: bool = False, on_conflict: str = "error", stats=None) -> "Engine":
        """Build everything from a catalogue (path or DataFrame) and optional audio features; save to ``out``.

        ``histories`` (path or DataFrame) feeds the rules; without it, ``simulate_users`` synthetic
        users are generated (seeded; None = ``config.simulation.n_users``, 0 = content only, no rules).
        ``blocks`` picks which blocks form the embedding (default: tabular plus every block found in
        ``features``). ``cache_dir`` keeps the genre model's out-of-fold probabilities between builds
        of the same catalogue. ``stats`` (path or DataFrame: track_id + any of the 12 statistics, e.g.
        ``audiostats.parquet`` extracted with ``--mapping``) fills statistics the catalogue lacks.
        The caller's ``config`` is copied, never modified.
        """
        v = check_build_args(catalog=catalog, histories=histories, simulate_users=simulate_users, out=out,
                             blocks=blocks, features=features, genre_model=genre_model, seed=seed,
                             cache_dir=cache_dir)
        simulate_users, seed, blocks = v["simulate_users"], v["seed"], v["blocks"]
        inputs = [p for p in (catalog, histories, features, genre_model, cache_dir, stats)
                  if isinstance(p, (str, os.PathLike))]
        if out is not None:  # fail before the work, not after it
            check_output_dir(out, kind=INDEX_KIND, inputs=inputs, force=force)
        self = cls(copy.deepcopy(config) if config is not None else None)
        c = self.config
        if seed is not None:
            c.index.seed = seed
            c.simulation.seed = seed
        steps = _Steps(8, progress)
        t0 = time.perf_counter()
        steps("catalogue")
        cat = load_catalog(catalog, on_conflict=on_conflict) if catalog is not None else None
        n_audio_only = n_left_out = n_filled = 0
        if stats is not None and cat is not None:
            table = read_stats(stats) if isinstance(stats, (str, os.PathLike)) else stats
            cat, n_filled = fill_stats(cat, table)
            cat["n_missing_stats"] = cat[list(STATS)].isna().sum(axis=1).astype("int64")
        if features is not None:
            cat, n_audio_only, n_left_out = extend_catalog(cat, features)
        if cat is None:
            raise InputError("need a catalogue (--catalog) and/or an audio features dir (--features)")
        cat = cat.reset_index(drop=True)
        names = list(blocks) if blocks else ["tabular", *available_blocks(features)]
        check_names(names)
        built: list[Block] = []
        self.genre_model_ = None
        self.tabular_ = {}
        coverage = stats_coverage(cat)
        can_genre = not coverage["empty_columns"]  # the genre model reads all 12 statistics
        for name in names:
            if name == "tabular":
                probs = None
                if c.genre_probs and can_genre:
                    from .genres.oof import cached_genre_probabilities

                    steps(f"genre probabilities ({c.genre_folds} artist-grouped folds)")
                    probs = cached_genre_probabilities(cat, cache_dir=cache_dir, model_dir=genre_model,
                                                       folds=c.genre_folds, model=c.genre_model,
                                                       random_state=c.index.seed, params=c.genre_params,
                                                       max_rows=c.genre_max_rows, progress=progress)
                    if probs is not None:
                        self.genre_model_ = probs[2]
                # genre labels as content when statistics are mostly missing (and no genre model ran)
                mostly_bare = 2 * coverage["without_stats"] >= coverage["tracks"]
                labels = label_classes(cat) if probs is None and mostly_bare else None
                block, medians = build_tabular(cat, probs=probs, metadata=c.embedding.metadata, labels=labels)
                self.tabular_ = {"medians": medians, "genre_classes": probs[1] if probs else None,
                                 "label_classes": labels or None}
                if not block.present.any():
                    raise InputError("nothing to embed in the tabular block: no track has any of the 12 "
                                     "statistics, a release year, a popularity or a genre label (add --stats "
                                     "or --features)")
            else:
                steps(f"block {name}")
                block = build_block(name, cat, features_dir=features)
            built.append(block)
        note = missing_stats_note(coverage, [n for n in names if n != "tabular"],
                                  genre_skipped=c.genre_probs and not can_genre)
        if note:
            warnings.warn(note, stacklevel=2)
        steps("embedding")
        c.embedding.blocks = tuple(names)
        self.builder_ = EmbeddingBuilder(weights=c.embedding.weights, genre_weight=c.embedding.genre_weight)
        self.embeddings_ = self.builder_.fit_transform(built)
        self.block_presence_ = {b.name: int(b.present.sum()) for b in built}
        empty = ~np.any(np.vstack([b.present for b in built]), axis=0)
        if empty.any():
            log.warning("%d track(s) have no feature block at all: they get a zero embedding "
                        "(reachable through rules and metadata only)", int(empty.sum()))
        steps("FAISS index + k-means clusters")
        self.index_ = TrackIndex(c.index).fit(self.embeddings_)
        steps(f"2-D map ({c.projection.method})")
        self.projection_ = Projection(c.projection).fit(self.embeddings_)  # 2-D map (projection.py)
        self.tracks_ = _track_table(cat)
        self._rebuild_maps()
        steps("histories")
        if histories is not None:
            h = read_histories(histories)
            self.simulated_ = None
        elif simulate_users is None or simulate_users > 0:
            n_users = c.simulation.n_users if simulate_users is None else int(simulate_users)
            steps(f"simulating {n_users:,} users")
            sim = c.simulation = dataclasses.replace(c.simulation, n_users=n_users)
            h = simulate_users_fn(self.tracks_, sim, groups=self.index_.clusters_, progress=progress)
            self.simulated_ = h
        else:
            h = None
            self.simulated_ = None
        steps("rules, candidate sources and ranker" if h is not None else "content recommender")
        self._set_histories(h)
        steps.close()
        self.stats_ = {"build_seconds": round(time.perf_counter() - t0, 3), "audio_only_tracks": n_audio_only,
                       "audio_files_left_out": n_left_out, "tracks_without_stats": coverage["without_stats"],
                       "stats_filled": n_filled, "stats_note": note}
        if out is not None:
            self.save(out, force=force, inputs=inputs)
        return self

    def _set_histories(self, h: pd.DataFrame | None) -> None:
        """Mine rules, count plays, fit the candidate sources and the ranker, remember each user's last plays.

        Unknown track ids are dropped and reported; histories that share no track with the catalogue
        are an error.
        """
        c = self.config
        n = len(self.tracks_)
        self.popularity_ = np.zeros(n, dtype=np.float64)
        self.users_ = {}
        self.rules_table_ = pd.DataFrame(columns=RULE_COLUMNS)
        self.history_stats_ = {"users": 0, "plays": 0, "unknown_plays": 0}
        self.interactions_ = None
        if h is not None:
            known = h["track_id"].isin(self.row_of_)
            n_unknown = int((~known).sum())
            if n_unknown:
                log.warning("histories: %d play(s) of %d track id(s) not in the catalogue were ignored",
                            n_unknown, h.loc[~known, "track_id"].nunique())
            h = h[known]
            if len(h) == 0:
                raise InputError("histories: no play refers to a catalogue track "
                                 "(are they from another catalogue?)")
            rows = h["track_id"].map(self.row_of_).to_numpy()
            self.interactions_ = Interactions.from_histories(h, self.row_of_, n)
            self.popularity_ = self.interactions_.popularity()
            tail = h.assign(_row=rows).groupby("user_id", sort=False).tail(c.user_recent)
            self.users_ = {u: g["_row"].to_numpy() for u, g in tail.groupby("user_id", sort=False)}
            self.rules_table_ = mine_rules(h, c.rules)
            self.history_stats_ = {"users": int(h["user_id"].nunique()), "plays": int(len(h)),
                                   "unknown_plays": n_unknown}
        self._make_recommender()

    def _rebuild_maps(self) -> None:
        ids = self.tracks_["track_id"].astype(str).tolist()
        self.row_of_ = {t: i for i, t in enumerate(ids)}
        if len(self.row_of_) != len(ids):
            raise InputError("catalogue has duplicate track ids")
        self.track_ids_ = np.asarray(ids, dtype=object)
        # object arrays, not lists or per-row iloc: O(1) lookups and nothing for the GC to traverse
        none = np.full(len(ids), None, dtype=object)
        self._names = (self.tracks_["track_name"].to_numpy(dtype=object, na_value=None)
                       if "track_name" in self.tracks_.columns else none)
        self._artists = (self.tracks_["track_artist"].to_numpy(dtype=object, na_value=None)
                         if "track_artist" in self.tracks_.columns else none)
        self.track_stats_ = audio_stats(self.tracks_)  # the ranker's audio features, from tracks.parquet

    def _make_recommender(self) -> None:
        rule_index = (RuleIndex(self.rules_table_, self.row_of_, len(self.tracks_))
                      if len(self.rules_table_) else None)
        self.recommender_ = self.make_recommender(self.interactions_, rule_index)

    def content(self, **override) -> Content:
        """What the content sources read (embeddings, FAISS index, clusters, metadata);
        fields can be overridden."""
        base = Content(embeddings=self.embeddings_, index=self.index_, clusters=self.index_.clusters_,
                       labels=self.track_ids_, meta=_meta_codes(self.tracks_),
                       catalog_popularity=_catalog_pop(self.tracks_),
                       stats=self.track_stats_)
        return dataclasses.replace(base, **override) if override else base

    def rule_miner(self):
        """``interactions -> RuleIndex | None`` with this engine's rule settings
        (for held-out training parts)."""
        def mine(inter: Interactions):
            table = mine_rules(inter.to_histories(self.track_ids_), self.config.rules)
            return RuleIndex(table, self.row_of_, len(self.tracks_)) if len(table) else None

        return mine

    def make_recommender(self, interactions: Interactions | None, rules: RuleIndex | None, *,
                         config: RecommendConfig | None = None, content: Content | None = None,
                         sources: Sequence[str] | None = None) -> HybridRecommender:
        """Fit the sources (and the ranker, with enough histories) on given plays and rules
        over this content."""
        data = SourceData(content or self.content(), interactions, rules)
        return fit_hybrid(data, config or self.config.recommend, mine=self.rule_miner(), sources=sources)

    # ------------------------------------------------------------------ queries
    def resolve(self, track_ids: Sequence[str], *, what: str = "recent") -> tuple[list[int], list[str]]:
        """Catalogue rows of known ids, and the unknown ids (reported, not fatal unless all are unknown)."""
        rows, unknown = [], []
        for t in track_ids:
            r = self.row_of_.get(str(t).strip())
            (unknown.append(str(t)) if r is None else rows.append(r))
        if unknown:
            warnings.warn(f"{what}: ignoring {len(unknown)} unknown track id(s): {', '.join(unknown[:5])}"
                          + (" ..." if len(unknown) > 5 else ""), stacklevel=3)
        return rows, unknown

    def _require_built(self) -> None:
        check_fitted(self, "row_of_", what="this Engine",
                     how="use Engine.build(...) or Engine.load(directory)")

    def recommend(self, recent: Sequence[str] | None = None, k: int = 10, *, user_id: str | None = None,
                  weights: dict[str, float] | None = None) -> Recommendations:
        """Next tracks after ``recent`` (oldest first) and/or a known user's last plays; recent tracks
        excluded.

        Fewer than ``k`` results come with ``.note`` saying why (a small catalogue, few reachable tracks).
        """
        self._require_built()
        recent = check_track_ids(recent)
        k = check_k(k)
        rows: list[int] = []
        if user_id is not None:
            if str(user_id) not in self.users_:
                raise InputError(f"unknown user id {user_id!r} (the index knows {len(self.users_)} users)")
            rows += [int(r) for r in self.users_[str(user_id)]]
        if recent:
            known, unknown = self.resolve(recent)
            if not known and not rows:
                raise InputError(f"none of the recent track ids is in the index: {', '.join(unknown[:5])}")
            rows += known
        if not rows:
            raise InputError("give at least one recent track id or a user id")
        got = self.recommender_.recommend(rows, k, reasons=True, weights=check_weights(weights))
        out = [self._rec(r, s, why) for r, s, why in zip(got.rows.tolist(), got.scores.tolist(), got.reasons)]
        note = None
        if len(out) < k:
            free = self.n_tracks - len(set(rows))
            note = (f"only {len(out)} of {k}: the index has {self.n_tracks} tracks, "
                    f"{len(set(rows))} of them recent"
                    if free < k else f"only {len(out)} of {k}: no other track is reachable from these recent "
                    "tracks (no shared plays, neighbours, artist or cluster)")
        return Recommendations(out, note=note)

    def _rec(self, row: int, score: float, reasons: list[str]) -> Recommendation:
        name, artist = self._names[row], self._artists[row]
        return Recommendation(str(self.track_ids_[row]), score, reasons,
                              None if name is None or name is pd.NA else str(name),
                              None if artist is None or artist is pd.NA else str(artist))

    def _row(self, track_id: str) -> int:
        self._require_built()
        if not isinstance(track_id, (str, int)) or isinstance(track_id, bool):
            raise InputError(f"track id must be a string, got {track_id!r}")
        row = self.row_of_.get(str(track_id).strip())
        if row is None:
            raise InputError(f"unknown track id {track_id!r}")
        return row

    def similar(self, track_id: str, k: int = 10) -> Recommendations:
        """The k nearest tracks by embedding (cosine), the track itself and tracks with no features
        excluded."""
        row = self._row(track_id)
        k = check_k(k)
        if not np.any(self.embeddings_[row]):
            return Recommendations([], note=f"{track_id} has no feature block (nothing to compare it by)")
        n = min(k + 1, self.n_tracks)
        sims, ids = self.index_.search(self.embeddings_[row], n)
        live = [(float(s), int(i)) for s, i in zip(sims[0], ids[0])
                if i >= 0 and int(i) != row and np.any(self.embeddings_[int(i)])]
        out = [self._rec(i, s, [f"neighbour of {track_id} (cos {s:.2f})"]) for s, i in live[:k]]
        note = None if len(out) == k else f"only {len(out)} of {k}: the index has {self.n_tracks} " \
                                          "tracks with features to compare"
        return Recommendations(out, note=note)

    def playlist(self, seed: Sequence[str], length: int = 30, *, arc: str = "flat",
                 selection: str | None = None, ordered: bool = True, config=None) -> Recommendations:
        """A ``length``-track playlist after ``seed`` (oldest first), ordered for smooth transitions
        (recsys/playlist.py); unknown seed ids are reported like ``recommend``'s."""
        from .playlist import PlaylistMaker

        self._require_built()
        seed = check_track_ids(seed, name="seed")
        length = check_k(length, name="length")
        if not seed:
            raise InputError("give at least one seed track id")
        rows, unknown = self.resolve(seed, what="seed")
        if not rows:
            raise InputError(f"none of the seed track ids is in the index: {', '.join(unknown[:5])}")
        out = PlaylistMaker.from_engine(self, config).make(rows, length, arc=arc, selection=selection,
                                                           ordered=ordered)
        note = None if len(out) == length else (f"only {len(out)} of {length}: no other track is reachable "
                                                "from these seed tracks")
        return Recommendations(out, note=note)

    def cluster_of(self, track_id: str) -> int:
        """The k-means cluster a track belongs to."""
        row = self._row(track_id)
        return int(self.index_.clusters_[row])

    def cluster_members(self, cluster: int) -> list[str]:
        """Track ids of one cluster."""
        self._require_built()
        cluster = check_int(cluster, name="cluster", low=0, high=self.index_.n_clusters - 1)
        return self.track_ids_[self.index_.clusters_ == cluster].tolist()

    # public accessors (interim, for recsys/playlist.py; arch's versions win on merge)
    @property
    def recommender(self) -> HybridRecommender:
        """The fitted two-stage recommender."""
        return self.recommender_

    @property
    def tracks(self):
        """The track table: ``frame``, ``ids``, ``names``, ``artists``."""
        from types import SimpleNamespace

        return SimpleNamespace(frame=self.tracks_, ids=self.track_ids_, names=self._names,
                               artists=self._artists, get=lambda t: self.row_of_.get(str(t).strip()))

    @property
    def n_tracks(self) -> int:
        """Tracks in the index."""
        self._require_built()
        return len(self.tracks_)

    # ------------------------------------------------------------------ growth
    def add_tracks(self, catalog) -> int:
        """Embed new catalogue tracks with the fitted parameters and append them to the index (no rebuild).

        Only the tabular block is computed for them (other blocks count as absent). Returns how many
        tracks were added; ids already indexed are skipped.
        """
        self._require_built()
        cat = load_catalog(catalog)
        cat = cat[~cat["track_id"].isin(self.row_of_)].reset_index(drop=True)
        if len(cat) == 0:
            return 0
        probs = None
        classes = self.tabular_.get("genre_classes")
        if classes:
            if self.genre_model_ is None:
                raise ModelError("index uses genre probabilities but its genre model is missing")
            from .genres.tabular import tabular_features

            P = np.asarray(self.genre_model_.predict_proba(tabular_features(cat)), dtype=np.float32)
            probs = (P, classes)
        tab, _ = build_tabular(cat, probs=probs, medians=self.tabular_["medians"],
                               metadata=self.config.embedding.metadata,
                               labels=self.tabular_.get("label_classes"))
        blocks = [tab] + [Block(n, np.zeros((len(cat), d), np.float32), np.zeros(len(cat), bool))
                          for n, d, _ in self.builder_.layout_ if n != "tabular"]
        X = self.builder_.transform(blocks)
        self.index_.add(X)  # appends rows and assigns them to the nearest centroids
        if getattr(self, "projection_", None) is not None:  # map positions through the fitted transform
            self.projection_.extend(X, reference=self.embeddings_[self.projection_.fitted_])
        self.embeddings_ = np.vstack([self.embeddings_, X])
        self.tracks_ = pd.concat([self.tracks_, _track_table(cat)], ignore_index=True)
        self._rebuild_maps()
        self.popularity_ = np.concatenate([self.popularity_, np.zeros(len(cat))])
        if self.interactions_ is not None:
            self.interactions_ = dataclasses.replace(self.interactions_, n_items=self.n_tracks)
        rec = self.recommender_
        rec.grow(SourceData(self.content(), self.interactions_, rec.data.rules, self.popularity_))
        return len(cat)

    # ------------------------------------------------------------------ persistence
    def save(self, out: str | os.PathLike, *, force: bool = False, inputs: Sequence = ()) -> Path:
        """Write the index directory atomically (an interrupted save leaves the previous one intact).

        ``out`` may replace an earlier index, a new or an empty directory; anything else needs ``force``.
        """
        self._require_built()
        out = Path(out)
        with artifact_dir(out, kind=INDEX_KIND, version=FORMAT_VERSION, inputs=inputs,
                          force=force) as (tmp, extra):
            write_table(self.tracks_.assign(plays=self.popularity_.astype(np.int64)), tmp / "tracks.parquet")
            np.save(tmp / "embeddings.npy", self.embeddings_.astype(np.float32), allow_pickle=False)
            self.index_.save(tmp)
            write_table(self.rules_table_, tmp / "rules.parquet")
            self.recommender_.save(tmp)
            ids = self.track_ids_
            if getattr(self, "projection_", None) is not None:
                save_map(self.projection_, ids, tmp)
            users = pd.DataFrame({"user_id": list(self.users_),
                                  "recent": [[str(ids[r]) for r in rows] for rows in self.users_.values()]})
            write_table(users if len(users) else pd.DataFrame({"user_id": pd.Series(dtype=str),
                                                               "recent": pd.Series(dtype=object)}),
                        tmp / "users.parquet")
            if getattr(self, "simulated_", None) is not None:
                write_table(self.simulated_, tmp / "histories.parquet")
            if self.genre_model_ is not None:
                (tmp / "genre_model").mkdir()
                self.genre_model_.write_files(tmp / "genre_model")
            rules = self.rules_table_
            extra.update({
                "blocks": list(self.config.embedding.blocks),
                "config": dataclasses.asdict(self.config),
                "counts": {"tracks": self.n_tracks, "dim": int(self.embeddings_.shape[1]),
                           "clusters": self.index_.n_clusters, "rules": int(len(rules)),
                           "rules_next": int((rules["kind"] == "next").sum()) if len(rules) else 0,
                           "block_presence": getattr(self, "block_presence_", {}), **self.history_stats_},
                "index_kind": _kind_name(self.index_),
                "embedding": self.builder_.to_dict(),
                "tabular": self.tabular_,
                "genre_model": self.genre_model_ is not None,
                "stats": getattr(self, "stats_", {}),
            })
        return out

    @classmethod
    @threads.limited
    def load(cls, directory: str | os.PathLike) -> "Engine":
        """Open an index directory; missing, truncated or incompatible files raise IndexFormatError."""
        d = Path(check_path(directory, name="directory"))
        man = read_manifest(d, kind=INDEX_KIND, version=FORMAT_VERSION, what="index", error=IndexFormatError)
        from .config import from_dict

        try:
            self = cls(from_dict(EngineConfig, man["config"], where=f"{d}/manifest.json"))
        except (InputError, KeyError, TypeError) as exc:
            raise IndexFormatError(f"{d}/manifest.json: incompatible engine config ({exc})") from None
        c = self.config
        c.embedding.blocks = tuple(c.embedding.blocks)
        try:
            self.tracks_ = pd.read_parquet(d / "tracks.parquet")
            rules = pd.read_parquet(d / "rules.parquet")
            users = pd.read_parquet(d / "users.parquet")
        except Exception as exc:  # pyarrow errors
            raise IndexFormatError(f"{d}: unreadable table ({type(exc).__name__}: {exc})") from None
        self.popularity_ = self.tracks_.pop("plays").to_numpy(dtype=np.float64)
        self.embeddings_ = load_npy(d / "embeddings.npy")
        self.index_ = TrackIndex.load(d, c.index)
        if not (len(self.tracks_) == len(self.embeddings_) == self.index_.ntotal):
            raise IndexFormatError(f"{d}: tracks ({len(self.tracks_)}), embeddings ({len(self.embeddings_)}) "
                                   f"and faiss.index ({self.index_.ntotal}) disagree")
        self.builder_ = EmbeddingBuilder.from_dict(man["embedding"])
        self.tabular_ = man.get("tabular") or {}
        self.genre_model_ = None
        if man.get("genre_model"):
            from .genres.tabular import GenreClassifier

            self.genre_model_ = GenreClassifier.load(d / "genre_model")
        self._rebuild_maps()
        self.projection_ = load_map(d, self.track_ids_)  # None for an index saved without map.parquet
        self.rules_table_ = rules
        if len(rules):
            rules["antecedents"] = rules["antecedents"].map(lambda a: tuple(str(x) for x in a))
            rules["consequents"] = rules["consequents"].map(lambda a: tuple(str(x) for x in a))
        self.users_ = {str(u): np.asarray([self.row_of_[t] for t in r if t in self.row_of_], dtype=np.int64)
                       for u, r in zip(users["user_id"].tolist(), users["recent"].tolist())}
        counts = man.get("counts", {})
        self.history_stats_ = {k: counts.get(k, 0) for k in ("users", "plays", "unknown_plays")}
        self.block_presence_ = counts.get("block_presence", {})
        self.stats_ = man.get("stats", {})
        self.simulated_ = None
        self.manifest_ = man
        self.path_ = d
        self.interactions_ = None  # the fitted sources are read back; the plays themselves are not stored
        rule_index = RuleIndex(rules, self.row_of_, len(self.tracks_)) if len(rules) else None
        self.recommender_ = HybridRecommender.load(d, SourceData(self.content(), None, rule_index,
                                                                 self.popularity_),
                                                   c.recommend)
        return self

    def summary(self) -> dict:
        """Counts for printing: tracks, dims, clusters, rules, users."""
        self._require_built()
        r = self.rules_table_
        return {"tracks": self.n_tracks, "dim": int(self.embeddings_.shape[1]),
                "blocks": list(self.config.embedding.blocks),
                "index": _kind_name(self.index_), "clusters": self.index_.n_clusters, "rules": int(len(r)),
                "rules_next": int((r["kind"] == "next").sum()) if len(r) else 0,
                "genre_probs": bool(self.tabular_.get("genre_classes")), **self.history_stats_,
                "recommender": dict(self.recommender_.info), "sources": list(self.recommender_.sources)}


def _kind_name(index: TrackIndex) -> str:
    from .index import index_kind

    return index_kind(index.index_)


def _meta_codes(tracks: pd.DataFrame) -> dict[str, np.ndarray]:
    """Integer codes per row for artist and album (-1 when unknown), for the metadata candidate sources."""
    out = {}
    if "track_artist" in tracks.columns:
        out["artist"] = pd.factorize(tracks["track_artist"].astype("string").str.strip().str.lower())[0]
    if "track_album_id" in tracks.columns:
        out["album"] = pd.factorize(tracks["track_album_id"].astype("string"))[0]
    elif "track_album_name" in tracks.columns and "track_artist" in tracks.columns:
        out["album"] = pd.factorize(tracks["track_artist"].astype("string") + "\x1f"
                                    + tracks["track_album_name"].astype("string"))[0]
    return out


def _catalog_pop(tracks: pd.DataFrame) -> np.ndarray | None:
    if "track_popularity" not in tracks.columns:
        return None
    return pd.to_numeric(tracks["track_popularity"], errors="coerce").to_numpy(dtype=np.float64)


def _track_table(cat: pd.DataFrame) -> pd.DataFrame:
    """Display and metadata columns an index keeps per track (the 12 statistics too, for the report)."""
    cols = [c for c in (*TRACK_COLUMNS, *STATS) if c in cat.columns]
    t = cat[cols].copy()
    for c in ("track_id", "track_name", "track_artist", "track_album_id", "track_album_name", "parent_genre",
              "source"):
        if c in t.columns:
            t[c] = t[c].astype("string")
    for c in ("track_popularity", "release_year"):
        if c in t.columns:
            t[c] = pd.to_numeric(t[c], errors="coerce").astype("float64")
    return t.reset_index(drop=True)

