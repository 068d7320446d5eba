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
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from . import threads
from .blocks import AudioBlock, TabularBlock, available_blocks, check_names, extend_catalog, make_block
from .catalog import fill_stats, load_catalog, missing_stats_note, read_stats, stats_coverage
from .embedding import EmbeddingBuilder, EmbeddingConfig
from .errors import IndexFormatError, InputError, ModelError
from .index import IndexConfig, TrackIndex
from .io import artifact_dir, check_output_dir, read_manifest, read_npy, write_table
from .projection import Projection, ProjectionConfig, load_map, save_map
from .rank import HybridRecommender, audio_stats, fit_hybrid
from .recommend import Recommendation, RecommendConfig, Recommendations
from .schema import STATS
from .sources import check_sources
from .sources.base import Content, Interactions, SourceData
from .tracks import TrackTable
from .users import SimulationConfig, read_histories
from .validate import (check_build_args, check_fitted, check_int, check_k, check_path, check_track_ids,
                       check_weights)
from .users import simulate_users as simulate_users_fn

log = logging.getLogger(__name__)

FORMAT_VERSION = 5  # 5: each source's settings in recommend.sources (its own Config dataclass)
# 4: rules are the rules source's (its config under recommend.rules)
# 3: candidate sources + LightGBM ranker files (recommender.json, ranker.txt, source_*)
# 2: manifest with a SHA-256 per file (io.artifact_dir)
INDEX_KIND = "recsys.index"


@dataclass
class EngineConfig:
    """Every tunable of the engine, one nested dataclass per module (TOML: ``[engine]`` with sub-tables)."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)  # the 2-D map (map.parquet)
    genre_probs: bool = True  # add genre-model probabilities to the tabular block when possible
    genre_folds: int = 3
    genre_model: str = "lightgbm"
    genre_params: dict = field(default_factory=lambda: {"n_estimators": 200})
    genre_max_rows: int = 20_000  # above this many labelled tracks each genre model fits on a sample
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


@dataclass
class Embedded:
    """The embedding part: the fitted blocks (``transform`` embeds new tracks), the fitted builder,
    one L2 row per track and how many tracks have each block."""

    builder: EmbeddingBuilder
    matrix: np.ndarray
    presence: dict[str, int]
    blocks: dict[str, TabularBlock | AudioBlock]

    @property
    def tabular(self) -> TabularBlock | None:
        """The catalogue block, when the embedding has one."""
        block = self.blocks.get("tabular")
        return block if isinstance(block, TabularBlock) else None


@dataclass
class Plays:
    """What the histories gave: plays per row, each user's last plays (rows) and counts."""

    popularity: np.ndarray
    users: dict[str, np.ndarray]
    counts: dict[str, int]
    interactions: Interactions | None = None  # the training plays (not stored: None after load)
    simulated: pd.DataFrame | None = None  # the simulated histories, saved as histories.parquet

    @classmethod
    def none(cls, n: int) -> Plays:
        """No histories: zero plays, no users."""
        return cls(np.zeros(n, dtype=np.float64), {}, {"users": 0, "plays": 0, "unknown_plays": 0})


@dataclass
class Provenance:
    """Build figures (seconds, audio-only tracks), and for a loaded index its manifest and directory."""

    stats: dict
    manifest: dict | None = None
    path: Path | None = None


class Engine:
    """Hybrid recommender over one catalogue. Build with :meth:`build`, reopen with :meth:`load`.

    Fitted parts (set together by ``_compose``): ``tracks_`` (TrackTable), ``embedded_`` (Embedded),
    ``index_`` (TrackIndex), ``projection_`` (Projection or None), ``plays_`` (Plays),
    ``recommender_`` (HybridRecommender), ``provenance_``. Outside code uses the public accessors.
    """

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self._search = None  # recsys.search index over the tracks, built or opened when first needed

    def _compose(self, *, tracks: TrackTable, embedded: Embedded, index: TrackIndex,
                 projection: Projection | None, plays: Plays, provenance: Provenance,
                 recommender: HybridRecommender | None = None) -> None:
        """Set every fitted part at once; without ``recommender`` the sources and ranker are fitted here."""
        if not (len(tracks) == len(embedded.matrix) == index.ntotal == len(plays.popularity)):
            raise IndexFormatError(f"tracks ({len(tracks)}), embeddings ({len(embedded.matrix)}), "
                                   f"FAISS rows ({index.ntotal}) and play counts ({len(plays.popularity)}) "
                                   "disagree")
        self.tracks_, self.embedded_, self.index_, self.projection_ = tracks, embedded, index, projection
        self.plays_, self.provenance_ = plays, provenance
        self.recommender_ = recommender or self.make_recommender(plays.interactions)

    # ------------------------------------------------------------------ public accessors
    @property
    def tracks(self) -> TrackTable:
        """The indexed tracks: ids, ``row(id)``, ``rows(ids)``, names, artists, ``frame`` (all columns)."""
        self._require_built()
        return self.tracks_

    def track(self, track_id: str) -> dict:
        """One track's catalogue columns and its play count (unknown ids: InputError)."""
        row = self._row(track_id)
        return {**self.tracks_.record(row), "plays": float(self.plays_.popularity[row])}

    @property
    def n_tracks(self) -> int:
        """Tracks in the index."""
        self._require_built()
        return len(self.tracks_)

    @property
    def embeddings(self) -> np.ndarray:
        """(n_tracks, dim) float32 L2-normalised embeddings, read-only (all-zero: no feature block)."""
        self._require_built()
        return _read_only(self.embedded_.matrix)

    def embedding(self, track_ids: str | Sequence[str]) -> np.ndarray:
        """The embedding row of one id, or the rows of several (any unknown id: InputError)."""
        self._require_built()
        if isinstance(track_ids, str):
            return _read_only(self.embedded_.matrix[self._row(track_ids)])
        return self.embedded_.matrix[[self._row(t) for t in track_ids]]

    @property
    def block_slices(self) -> dict[str, slice]:
        """Block name -> its columns in :attr:`embeddings`."""
        self._require_built()
        slices = self.embedded_.builder.block_slices
        width = max((s.stop for s in slices.values()), default=0)
        if width != self.embedded_.matrix.shape[1]:
            raise ModelError(f"embedding layout covers {width} columns but the stored embeddings have "
                             f"{self.embedded_.matrix.shape[1]}: rebuild the index")
        return slices

    @property
    def block_presence(self) -> dict[str, int]:
        """Block name -> how many tracks have it."""
        self._require_built()
        return dict(self.embedded_.presence)

    @property
    def builder(self) -> EmbeddingBuilder:
        """The fitted embedding builder (per-block scaling, ``block_slices``, ``columns(block)``)."""
        self._require_built()
        return self.embedded_.builder

    @property
    def index(self) -> TrackIndex:
        """The FAISS index and k-means clusters over :attr:`embeddings`."""
        self._require_built()
        return self.index_

    @property
    def clusters(self) -> np.ndarray:
        """The k-means cluster of every track (row order)."""
        self._require_built()
        return self.index_.clusters

    @property
    def popularity(self) -> np.ndarray:
        """Plays per track in the histories the index was built from (zeros without histories)."""
        self._require_built()
        return _read_only(self.plays_.popularity)

    @property
    def projection(self) -> Projection | None:
        """The 2-D map (``positions``, ``method``); None for an index saved without map.parquet."""
        self._require_built()
        return self.projection_

    @property
    def genre_model(self):
        """The genre model behind the tabular block's probabilities, or None."""
        self._require_built()
        tab = self.embedded_.tabular
        return None if tab is None else tab.genre_classifier

    @property
    def genre_classes(self) -> list[str] | None:
        """The genres whose probabilities are columns of the tabular block (None: statistics only)."""
        self._require_built()
        tab = self.embedded_.tabular
        return None if tab is None else tab.genre_classes

    @property
    def rules(self) -> pd.DataFrame:
        """The association / next-track rules the rules source mined from the histories (RULE_COLUMNS)."""
        return self.recommender.rules

    @property
    def simulated_histories(self) -> pd.DataFrame | None:
        """The synthetic histories the index was built from (None: real or no histories, or loaded)."""
        self._require_built()
        return self.plays_.simulated

    @property
    def recommender(self) -> HybridRecommender:
        """The fitted hybrid (candidate sources + LightGBM ranker or blend)."""
        self._require_built()
        return self.recommender_

    @property
    def sources(self) -> list[str]:
        """Names of the fitted candidate sources."""
        return list(self.recommender.sources)

    @property
    def stats(self) -> dict:
        """Build figures: ``build_seconds``, ``audio_only_tracks``, ``audio_files_left_out``."""
        self._require_built()
        return dict(self.provenance_.stats)

    @property
    def manifest(self) -> dict | None:
        """The manifest of the loaded index directory (None for an engine built and not loaded)."""
        self._require_built()
        return self.provenance_.manifest

    @property
    def path(self) -> Path | None:
        """The directory the engine was loaded from (None when built in memory)."""
        self._require_built()
        return self.provenance_.path

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
        check_sources(c.recommend)  # a bad [engine.recommend.sources.*] table fails before the work
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
        coverage = stats_coverage(cat)
        can_genre = not coverage["empty_columns"]  # the genre model reads all 12 statistics
        # the steps this build runs (catalogue, blocks, embedding, index, map, histories, users?, sources)
        steps.bar.total = 6 + sum(n != "tabular" or (c.genre_probs and can_genre) for n in names) + (
            histories is None and simulate_users != 0)
        fitted, built = {}, []
        for name in names:
            block = fitted[name] = make_block(
                name, metadata=c.embedding.metadata, genre_probs=c.genre_probs, genre_folds=c.genre_folds,
                genre_model=c.genre_model, genre_params=c.genre_params, genre_max_rows=c.genre_max_rows,
                genre_weight=c.embedding.genre_weight, seed=c.index.seed, model_dir=genre_model,
                cache_dir=cache_dir, progress=progress)
            if not isinstance(block, TabularBlock):
                steps(f"block {name}")
            elif block.wants_genre_model(cat):
                steps(f"genre probabilities ({c.genre_folds} artist-grouped folds)")
            built.append(block.fit_transform(cat, features_dir=features))
        note = missing_stats_note(coverage, [b for b in built if b.name != "tabular"],
                                  genre_skipped=c.genre_probs and not can_genre)
        if note:
            warnings.warn(note, stacklevel=2)
        steps("embedding")
        c.embedding.blocks = tuple(names)
        builder = EmbeddingBuilder(weights=c.embedding.weights)
        presence = {b.name: int(b.present.sum()) for b in built}
        embedded = Embedded(builder, builder.fit_transform(built), presence, fitted)
        empty = ~np.any(np.vstack([b.present for b in built]), axis=0)
        if empty.any():
            log.warning("%d track(s) have no feature block at all: they get a zero embedding "
                        "(reachable through rules and metadata only)", int(empty.sum()))
        steps("FAISS index + k-means clusters")
        index = TrackIndex(c.index).fit(embedded.matrix)
        steps(f"2-D map ({c.projection.method})")
        projection = Projection(c.projection).fit(embedded.matrix)  # 2-D map (projection.py)
        tracks = TrackTable.from_catalog(cat)
        if "musicnn" in names:  # the tagger's top tags: in reasons, the report and the page
            from .blocks.musicnn import track_tags

            tracks = TrackTable(tracks.frame.assign(tags=track_tags(features, tracks.frame["track_id"])))
        steps("histories")
        simulated = None
        if histories is not None:
            h = read_histories(histories)
        elif simulate_users is None or simulate_users > 0:
            n_users = c.simulation.n_users if simulate_users is None else int(simulate_users)
            steps(f"simulating {n_users:,} users")
            sim = c.simulation = dataclasses.replace(c.simulation, n_users=n_users)
            h = simulated = simulate_users_fn(tracks.frame, sim, groups=index.clusters, progress=progress)
        else:
            h = None
        steps("rules, candidate sources and ranker" if h is not None else "content recommender")
        plays = _plays(tracks, h, c, simulated=simulated)
        stats = {"audio_only_tracks": n_audio_only, "audio_files_left_out": n_left_out,
                 "tracks_without_stats": coverage["without_stats"], "stats_filled": n_filled,
                 "stats_note": note}
        self._compose(tracks=tracks, embedded=embedded, index=index, projection=projection, plays=plays,
                      provenance=Provenance(stats))
        steps.close()
        stats["build_seconds"] = round(time.perf_counter() - t0, 3)
        if out is not None:
            self.save(out, force=force, inputs=inputs)
        return self

    def content(self, **override) -> Content:
        """What the content sources read (embeddings, FAISS index, clusters, metadata);
        fields can be overridden."""
        base = _content(self.tracks_, self.embedded_.matrix, self.index_)
        return dataclasses.replace(base, **override) if override else base

    def make_recommender(self, interactions: Interactions | None, *,
                         config: RecommendConfig | None = None, content: Content | None = None,
                         sources: Sequence[str] | None = None) -> HybridRecommender:
        """Fit the sources (rules included) and, with enough histories, the ranker on given plays
        over this content."""
        data = SourceData(content or self.content(), interactions)
        return fit_hybrid(data, config or self.config.recommend, sources=sources)

    # ------------------------------------------------------------------ queries
    def resolve(self, track_ids: Sequence[str], *, what: str = "recent",
                stacklevel: int = 3) -> tuple[list[int], list[str]]:
        """Catalogue rows of known ids, and the unknown ids (reported, not fatal unless all are unknown;
        the warning names the line ``stacklevel`` frames up: the caller of the public method)."""
        rows, unknown = self.tracks.rows(track_ids)
        if unknown:
            warnings.warn(f"{what}: ignoring {len(unknown)} unknown track id(s): {', '.join(unknown[:5])}"
                          + (" ..." if len(unknown) > 5 else ""), stacklevel=stacklevel)
        return rows, unknown

    def _require_built(self) -> None:
        check_fitted(self, "recommender_", what="this Engine",
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
        rows = self._context_rows(recent, user_id)
        got = self.recommender_.recommend(rows, k, reasons=True, weights=check_weights(weights))
        return self._recommendations(rows, k, got)

    def recommend_many(self, contexts: Sequence[Sequence[str]], k: int = 10, *,
                       weights: dict[str, float] | None = None) -> list[Recommendations]:
        """``[recommend(recent, k) for recent in contexts]``, the same answers, faster: the ranker scores
        many contexts' candidates in one call. Every context is checked first (``recommend``'s errors,
        prefixed with the context's position)."""
        self._require_built()
        if isinstance(contexts, (str, bytes)) or not isinstance(contexts, Iterable):
            raise InputError("contexts must be a list of lists of recent track ids, "
                             f"got {type(contexts).__name__}")
        k = check_k(k)
        weights = check_weights(weights)
        rows_of = []
        for i, recent in enumerate(contexts):
            try:
                rows_of.append(self._context_rows(check_track_ids(recent), None))
            except InputError as exc:
                raise InputError(f"contexts[{i}]: {exc}") from None
        got = self.recommender_.recommend_many(rows_of, k, reasons=True, weights=weights)
        return [self._recommendations(rows, k, g) for rows, g in zip(rows_of, got)]

    def _context_rows(self, recent: list[str], user_id: str | None) -> list[int]:
        """Catalogue rows of a user's last plays and the known ``recent`` ids (unknown ones warned about)."""
        rows: list[int] = []
        if user_id is not None:
            users = self.plays_.users
            if str(user_id) not in users:
                raise InputError(f"unknown user id {user_id!r} (the index knows {len(users)} users)")
            rows += [int(r) for r in users[str(user_id)]]
        if recent:
            known, unknown = self.resolve(recent, stacklevel=4)  # resolve, this, recommend, caller
            if not known and not rows:
                raise InputError(f"none of the recent track ids is in the index: {', '.join(unknown[:5])}")
            rows += known
        if not rows:
            raise InputError("give at least one recent track id or a user id")
        return rows

    def _recommendations(self, rows: list[int], k: int, got) -> Recommendations:
        """The recommender's rows as :class:`Recommendation` s, with a note when fewer than ``k``."""
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
        name, artist = self.tracks_.names[row], self.tracks_.artists[row]
        tags = self.tracks_.tags[row]
        if isinstance(tags, str) and tags:  # the musicnn block's top tags
            reasons = [*reasons, f"tags: {tags}"]
        return Recommendation(str(self.tracks_.ids[row]), score, reasons,
                              None if name is None or name is pd.NA else str(name),
                              None if artist is None or artist is pd.NA else str(artist))

    def _row(self, track_id: str) -> int:
        self._require_built()
        return self.tracks_.row(track_id)

    def similar(self, track_id: str, k: int = 10) -> Recommendations:
        """The k nearest tracks by embedding (cosine), the track itself and tracks with no features
        excluded."""
        row = self._row(track_id)
        k = check_k(k)
        E = self.embedded_.matrix
        if not np.any(E[row]):
            return Recommendations([], note=f"{track_id} has no feature block (nothing to compare it by)")
        n = min(k + 1, self.n_tracks)
        with threads.one_thread():  # one query: a second OpenMP thread only waits for a busy core
            sims, ids = self.index_.search(E[row], n)
        live = [(float(s), int(i)) for s, i in zip(sims[0], ids[0])
                if i >= 0 and int(i) != row and np.any(E[int(i)])]
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

    def search(self, query: str, k: int = 20) -> list[str]:
        """Track ids whose title, artist or album match ``query`` (recsys/search.py), best first."""
        self._require_built()
        return [str(self.tracks_.ids[r]) for r in self.search_rows(query, check_k(k))]

    def search_rows(self, query: str, k: int = 20) -> list[int]:
        """Rows of :meth:`search` (for callers that already work in rows)."""
        return self._search_index().search(query, k)

    def _search_index(self):
        if self._search is None:  # built in memory; an older index has no search.sqlite
            from . import search

            self._search = search.for_tracks(self.tracks_.frame, self.plays_.popularity)
        return self._search

    def cluster_of(self, track_id: str) -> int:
        """The k-means cluster a track belongs to."""
        row = self._row(track_id)
        return int(self.index_.clusters[row])

    def cluster_members(self, cluster: int) -> list[str]:
        """Track ids of one cluster."""
        self._require_built()
        cluster = check_int(cluster, name="cluster", low=0, high=self.index_.n_clusters - 1)
        return self.tracks_.ids[self.index_.clusters == cluster].tolist()

    # ------------------------------------------------------------------ growth
    def add_tracks(self, catalog) -> int:
        """Embed new catalogue tracks with the fitted parameters and append them to the index (no rebuild).

        Only the tabular block is computed for them (other blocks count as absent). Returns how many
        tracks were added; ids already indexed are skipped.
        """
        self._require_built()
        if isinstance(self.embedded_.matrix, np.memmap):
            raise InputError("this index was opened read-only (Engine.load(..., mmap=True)): "
                             "cannot add tracks")
        cat = load_catalog(catalog)
        cat = cat[~cat["track_id"].isin(self.tracks_.row_of)].reset_index(drop=True)
        if len(cat) == 0:
            return 0
        em = self.embedded_
        blocks = [em.blocks[name].transform(cat) for name in em.builder.block_slices]
        X = em.builder.transform(blocks)
        self.index_.add(X)  # appends rows and assigns them to the nearest centroids
        if self.projection_ is not None:  # map positions through the fitted transform
            self.projection_.extend(X, reference=em.matrix[self.projection_.fitted])
        tracks = self.tracks_.extend(cat)
        pl = self.plays_
        inter = None if pl.interactions is None else dataclasses.replace(pl.interactions, n_items=len(tracks))
        plays = dataclasses.replace(pl, popularity=np.concatenate([pl.popularity, np.zeros(len(cat))]),
                                    interactions=inter)
        embedded = dataclasses.replace(em, matrix=np.vstack([em.matrix, X]))
        rec = self.recommender_
        rec.grow(SourceData(_content(tracks, embedded.matrix, self.index_), inter, plays.popularity))
        self._compose(tracks=tracks, embedded=embedded, index=self.index_, projection=self.projection_,
                      plays=plays, provenance=self.provenance_, recommender=rec)
        if self._search is not None:  # search.sqlite: append the new rows
            from . import search

            self._search = search.extend_for_tracks(self._search, tracks.frame.iloc[-len(cat):],
                                                    np.zeros(len(cat)))
        return len(cat)

    # ------------------------------------------------------------------ persistence
    def save(self, out: str | os.PathLike, *, force: bool = False, inputs: Sequence = ()) -> Path:
        """Write the index directory atomically (an interrupted save leaves the previous one intact).

        ``out`` may replace an earlier index, a new or an empty directory; anything else needs ``force``.
        """
        self._require_built()
        out = Path(out)
        em, pl = self.embedded_, self.plays_
        with artifact_dir(out, kind=INDEX_KIND, version=FORMAT_VERSION, inputs=inputs,
                          force=force) as (tmp, extra):
            write_table(self.tracks_.frame.assign(plays=pl.popularity.astype(np.int64)),
                        tmp / "tracks.parquet")
            np.save(tmp / "embeddings.npy", em.matrix.astype(np.float32), allow_pickle=False)
            self.index_.save(tmp)
            self.recommender_.save(tmp)
            ids = self.tracks_.ids
            if self.projection_ is not None:
                save_map(self.projection_, ids, tmp)
            users = pd.DataFrame({"user_id": list(pl.users),
                                  "recent": [[str(ids[r]) for r in rows] for rows in pl.users.values()]})
            write_table(users if len(users) else pd.DataFrame({"user_id": pd.Series(dtype=str),
                                                               "recent": pd.Series(dtype=object)}),
                        tmp / "users.parquet")
            if pl.simulated is not None:
                write_table(pl.simulated, tmp / "histories.parquet")
            self._search_index().save(tmp / "search.sqlite")
            tab = em.tabular
            tab_state = tab.save(tmp) if tab is not None else {}
            extra.update({
                "blocks": list(self.config.embedding.blocks),
                "config": dataclasses.asdict(self.config),
                "counts": {**self._counts(), "block_presence": em.presence},
                "index_kind": self.index_.kind,
                "embedding": em.builder.to_dict(),
                "tabular": tab_state,
                "genre_model": self.genre_model is not None,
                "stats": self.provenance_.stats,
            })
        return out

    @classmethod
    @threads.limited
    def load(cls, directory: str | os.PathLike, *, mmap: bool = False) -> "Engine":
        """Open an index directory; missing, truncated or incompatible files raise IndexFormatError.

        ``mmap``: embeddings and FAISS index memory-mapped read-only (shared by server processes;
        no add_tracks).
        """
        d = Path(check_path(directory, name="directory"))
        man = read_manifest(d, kind=INDEX_KIND, version=FORMAT_VERSION, what="index", error=IndexFormatError)
        from .config import options_to_config

        try:
            self = cls(options_to_config(EngineConfig, man["config"], where=f"{d}/manifest.json"))
        except (InputError, KeyError, TypeError) as exc:
            raise IndexFormatError(f"{d}/manifest.json: incompatible engine config ({exc})") from None
        c = self.config
        c.embedding.blocks = tuple(c.embedding.blocks)
        try:
            frame = pd.read_parquet(d / "tracks.parquet")
            users = pd.read_parquet(d / "users.parquet")
        except Exception as exc:  # pyarrow errors
            raise IndexFormatError(f"{d}: unreadable table ({type(exc).__name__}: {exc})") from None
        popularity = frame.pop("plays").to_numpy(dtype=np.float64)
        tracks = TrackTable(frame)
        matrix = read_npy(d / "embeddings.npy", mmap=mmap)
        index = TrackIndex.load(d, c.index, mmap=mmap)
        if not (len(tracks) == len(matrix) == index.ntotal):
            raise IndexFormatError(f"{d}: tracks ({len(tracks)}), embeddings ({len(matrix)}) "
                                   f"and faiss.index ({index.ntotal}) disagree")
        counts = man.get("counts", {})
        builder = EmbeddingBuilder.from_dict(man["embedding"])
        fitted = {name: AudioBlock(name, builder.columns(name)) for name in builder.block_slices}
        if "tabular" in fitted:
            fitted["tabular"] = TabularBlock.load(d, man.get("tabular") or {},
                                                  has_model=bool(man.get("genre_model")),
                                                  metadata=c.embedding.metadata,
                                                  genre_weight=c.embedding.genre_weight)
        embedded = Embedded(builder, matrix, counts.get("block_presence", {}), fitted)
        row_of = tracks.row_of
        plays = Plays(popularity,
                      {str(u): np.asarray([row_of[t] for t in r if t in row_of], dtype=np.int64)
                       for u, r in zip(users["user_id"].tolist(), users["recent"].tolist())},
                      {k: counts.get(k, 0) for k in ("users", "plays", "unknown_plays")})
        # the fitted sources are read back (the rules source its rules.parquet); the plays are not stored
        recommender = HybridRecommender.load(d, SourceData(_content(tracks, matrix, index), None, popularity),
                                             c.recommend)
        self._compose(tracks=tracks, embedded=embedded, index=index, projection=load_map(d, tracks.ids),
                      plays=plays, provenance=Provenance(man.get("stats", {}), man, d),
                      recommender=recommender)
        from .search import SearchIndex

        self._search = SearchIndex.open(d / "search.sqlite") if (d / "search.sqlite").exists() else None
        return self

    def _counts(self) -> dict:
        r = self.rules
        return {"tracks": self.n_tracks, "dim": int(self.embedded_.matrix.shape[1]),
                "clusters": self.index_.n_clusters, "rules": int(len(r)),
                "rules_next": int((r["kind"] == "next").sum()) if len(r) else 0, **self.plays_.counts}

    def summary(self) -> dict:
        """Counts for printing: tracks, dims, blocks, clusters, rules, users, recommender, sources."""
        self._require_built()
        c = self._counts()
        return {"tracks": c["tracks"], "dim": c["dim"], "blocks": list(self.config.embedding.blocks),
                "index": self.index_.kind, "clusters": c["clusters"], "rules": c["rules"],
                "rules_next": c["rules_next"],
                "genre_probs": bool(self.genre_classes), **self.plays_.counts,
                "recommender": dict(self.recommender_.info),
                "sources": list(self.recommender_.sources)}


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def _content(tracks: TrackTable, embeddings: np.ndarray, index: TrackIndex) -> Content:
    """What the content sources read, from the engine's parts."""
    return Content(embeddings=embeddings, index=index, clusters=index.clusters, labels=tracks.ids,
                   meta=tracks.meta_codes(), catalog_popularity=tracks.numbers("track_popularity"),
                   stats=audio_stats(tracks.frame))


def _plays(tracks: TrackTable, h: pd.DataFrame | None, config: EngineConfig, *,
           simulated: pd.DataFrame | None = None) -> Plays:
    """Count plays and remember each user's last plays (None: no plays).

    Unknown track ids are dropped and reported; histories that share no track with the catalogue
    are an error.
    """
    if h is None:
        return Plays.none(len(tracks))
    row_of = tracks.row_of
    known = h["track_id"].isin(row_of)
    n_unknown = int((~known).sum())
    if n_unknown:
        log.warning("histories: %d play(s) of %d track id(s) not in the catalogue were ignored",
                    n_unknown, h.loc[~known, "track_id"].nunique())
    h = h[known]
    if len(h) == 0:
        raise InputError("histories: no play refers to a catalogue track (are they from another catalogue?)")
    rows = h["track_id"].map(row_of).to_numpy()
    inter = Interactions.from_histories(h, row_of, len(tracks))
    tail = h.assign(_row=rows).groupby("user_id", sort=False).tail(config.user_recent)
    users = {u: g["_row"].to_numpy() for u, g in tail.groupby("user_id", sort=False)}
    return Plays(inter.popularity(), users,
                 {"users": int(h["user_id"].nunique()), "plays": int(len(h)), "unknown_plays": n_unknown},
                 inter, simulated)
