"""What the server serves: an immutable snapshot of one loaded index, and the holder that swaps it.

A request takes ``holder.current`` once and uses only that snapshot, so a reload (which builds a
whole new snapshot aside and then replaces one reference) never changes an index under a request
in flight: in-flight requests finish on the old index, later ones see the new one.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("recsys.serve")

#: Above this many tracks ``/api/map`` returns a seeded sample (plus every track asked for by id).
MAP_MAX_POINTS = 200_000
#: Audio blocks that can be computed from an uploaded clip without extra models.
CLIP_BLOCKS = ("spectral", "audiostats")


@dataclass
class ServeOptions:
    """Where the server finds its index and the optional audio side (features, audio files, CNN)."""

    index: str
    features: str | None = None
    audio_dir: str | None = None
    cnn_model: str | None = None
    max_upload_bytes: int = 20 * 1024 * 1024
    max_json_bytes: int = 256 * 1024
    threads: int | None = None  # worker threads for the sync handlers (None: Starlette's default, 40)
    engine_threads: int = 2  # threads running the engine (recommend, search, similar) at once
    queue: int = 32  # requests waiting for an engine thread beyond which the server answers 503
    mmap: bool = False  # open the index memory-mapped read-only (recsys serve --workers)
    # > 0: recommend calls run in this many engine processes (recsys/serve/engines.py), not in this one
    engine_processes: int = 0
    # seconds an idle keep-alive connection stays open; longer than clients keep theirs (httpx 5 s,
    # requests/urllib3 until reused), so the client drops it first and never sends on a connection the
    # server is closing at that moment (uvicorn's 5 s equals httpx's: a POST then fails with ReadError)
    keep_alive: float = 75.0

    def uvicorn_settings(self) -> dict:
        """The ``uvicorn.Config`` settings every ``recsys serve`` process shares (one or ``--workers``)."""
        return {"access_log": False, "log_level": "warning", "timeout_keep_alive": self.keep_alive,
                "timeout_graceful_shutdown": 5}


def _text(series: pd.Series | None, n: int) -> np.ndarray:
    if series is None:
        return np.full(n, "", dtype=object)
    return series.astype("string").fillna("").str.lower().to_numpy(dtype=object)


class Snapshot:
    """One loaded index plus everything precomputed for the API (search text, map, statistics)."""

    def __init__(self, engine, options: ServeOptions, *, generation: int = 0) -> None:
        from ..schema import STATS

        self.engine = engine
        self.options = options
        self.generation = generation
        self.pool = None  # the EnginePool answering recommend calls (--engine-processes), else None
        self.loaded_at = time.time()
        t = engine.tracks.frame
        n = len(t)
        self.n = n
        self.names = _text(t["track_name"] if "track_name" in t.columns else None, n)
        self.artists = _text(t["track_artist"] if "track_artist" in t.columns else None, n)
        pop = (pd.to_numeric(t["track_popularity"], errors="coerce")
               if "track_popularity" in t.columns else None)
        prior = np.asarray(engine.popularity, dtype=np.float64)
        if pop is not None:
            prior = prior + np.nan_to_num(pop.to_numpy(dtype=np.float64), nan=0.0) / 100.0
        self.order_prior = prior
        self.genres = (t["parent_genre"].astype("string").fillna("unknown").to_numpy(dtype=object)
                       if "parent_genre" in t.columns else np.full(n, "unknown", dtype=object))
        self.clusters = np.asarray(engine.clusters, dtype=np.int64)
        # 2-D map: the one saved with the index, else PCA computed here (older index without map.parquet)
        proj = engine.projection
        if proj is None:
            from ..projection import Projection, ProjectionConfig

            proj = Projection(ProjectionConfig(method="pca")).fit(engine.embeddings)
            self.map_method = "pca (computed at load: the index has no map.parquet)"
        else:
            self.map_method = proj.method
        self.positions = np.asarray(proj.positions, dtype=np.float32)
        self.stats = {c: pd.to_numeric(t[c], errors="coerce").to_numpy(dtype=np.float64)
                      for c in STATS if c in t.columns}
        self.stats_sorted = {c: np.sort(v[np.isfinite(v)]) for c, v in self.stats.items()}
        # per-track block presence: an absent block is exactly zero in the embedding
        E = engine.embeddings
        self.block_slices: dict[str, slice] = engine.block_slices
        self.block_present = {name: np.any(E[:, s] != 0, axis=1) for name, s in self.block_slices.items()}
        self.audio_files = self._audio_files()
        self._map_json: bytes | None = None
        self._clip_matrix = None
        self.report_cache: OrderedDict[str, bytes] = OrderedDict()

    # ------------------------------------------------------------------ helpers
    def row(self, track_id: str) -> int | None:
        return self.engine.tracks.get(track_id)

    def blocks_of(self, row: int) -> list[str]:
        return [name for name, present in self.block_present.items() if present[row]]

    def percentile(self, stat: str, value: float) -> float | None:
        s = self.stats_sorted.get(stat)
        if s is None or not len(s) or not np.isfinite(value):
            return None
        lo, hi = np.searchsorted(s, value, "left"), np.searchsorted(s, value, "right")
        return float(100.0 * (lo + hi) / 2.0 / len(s))

    def _audio_files(self) -> dict[str, Path]:
        from ..report import audio_file_map

        o = self.options
        return audio_file_map(self.engine.tracks.ids, features=o.features, audio_dir=o.audio_dir)

    def map_json(self) -> bytes:
        """``{"points": [...], "method": ..., "sampled": bool}`` serialised once per snapshot."""
        if self._map_json is None:
            import json

            rows = np.arange(self.n)
            sampled = self.n > MAP_MAX_POINTS
            if sampled:
                rows = np.sort(np.random.default_rng(0).choice(self.n, MAP_MAX_POINTS, replace=False))
            ids, names = self.engine.tracks.ids, self.engine.tracks.names
            pts = [{"track_id": str(ids[r]), "x": round(float(self.positions[r, 0]), 4),
                    "y": round(float(self.positions[r, 1]), 4), "genre": str(self.genres[r]),
                    "cluster": int(self.clusters[r]), "name": names[r] if isinstance(names[r], str) else None}
                   for r in rows.tolist()]
            self._map_json = json.dumps({"points": pts, "method": self.map_method, "sampled": bool(sampled),
                                         "total": self.n}).encode()
        return self._map_json

    def clip_matrix(self):
        """(block names, columns, normalised audio part of the catalogue, rows) for similar-audio."""
        if self._clip_matrix is None:
            names = [b for b in CLIP_BLOCKS if b in self.block_slices]
            if not names:
                self._clip_matrix = (names, None, None, None)
            else:
                cols = np.concatenate([np.arange(self.block_slices[b].start, self.block_slices[b].stop)
                                       for b in names])
                A = self.engine.embeddings[:, cols]
                norms = np.linalg.norm(A, axis=1)
                rows = np.flatnonzero(norms > 0)
                self._clip_matrix = (names, cols, (A[rows] / norms[rows, None]).astype(np.float32), rows)
        return self._clip_matrix


class IndexHolder:
    """Holds the current :class:`Snapshot`; :meth:`reload` builds a new one aside and swaps one reference."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self.reloads = 0
        self.current = self._load(0)

    def _load(self, generation: int) -> Snapshot:
        from ..engine import Engine

        t0 = time.perf_counter()
        snap = Snapshot(Engine.load(self.options.index, mmap=self.options.mmap), self.options,
                        generation=generation)
        snap.engine.search_rows("warm up", 1)  # without search.sqlite: built now, not in a request
        if self.options.engine_processes > 0:  # loaded (and any failure raised) before the swap
            from .engines import EnginePool

            opts = self.options
            snap.pool = EnginePool(opts.index, opts.engine_processes, queue=opts.queue)
        snap.load_seconds = round(time.perf_counter() - t0, 3)
        return snap

    def reload(self) -> Snapshot:
        """Load the index directory again; on failure the previous snapshot keeps serving (error raised)."""
        with self._lock:
            snap = self._load(self.current.generation + 1)
            old, self.current = self.current, snap  # one reference assignment: atomic for readers
            self.reloads += 1
            if old.pool is not None:  # its processes finish what they were given, then stop
                old.pool.close_later()
        log.info("reloaded %s: %d tracks (generation %d, %.2f s)", self.options.index, snap.n,
                 snap.generation, snap.load_seconds)
        return snap

    def close(self) -> None:
        """Stop the engine processes (``--engine-processes``), if any."""
        if self.current.pool is not None:
            self.current.pool.close()
