"""FAISS index over track embeddings and k-means clusters.

The index kind follows catalogue size: exact inner product (``IndexFlatIP``) up to ``flat_max``
tracks, then HNSW (or IVF when asked). Row i of the index is track i of ``tracks.parquet``, so
adding tracks appends rows and never renumbers. Clusters come from ``faiss.Kmeans`` (spherical, as
the embeddings are L2-normalised); new tracks join the nearest centroid.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import IndexFormatError, InputError
from .io import read_npy


@dataclass
class IndexConfig:
    """FAISS index and clustering parameters."""

    kind: str = "auto"  # auto | flat | hnsw | ivf
    flat_max: int = 50_000  # auto: exact search up to this many tracks
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64
    hnsw_ef_search: int = 64
    ivf_nlist: int = 0  # 0: about 4*sqrt(n)
    ivf_nprobe: int = 16
    n_clusters: int = 0  # 0: default by size (sqrt(n/2), clamped to [2, 1024])
    kmeans_iter: int = 20
    kmeans_max_points_per_centroid: int = 256
    seed: int = 0


def default_k(n: int) -> int:
    """Default number of clusters for n tracks: sqrt(n/2), at least 2, at most 1024 and n."""
    return int(max(1, min(n, max(2, min(1024, round(np.sqrt(n / 2)))))))


def _faiss():
    import faiss

    return faiss


def make_index(X: np.ndarray, config: IndexConfig):
    """Create and fill the FAISS index chosen by ``config.kind`` and the size of ``X``."""
    faiss = _faiss()
    n, d = X.shape
    kind = config.kind
    if kind == "auto":
        kind = "flat" if n <= config.flat_max else "hnsw"
    X = np.ascontiguousarray(X, dtype=np.float32)
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.hnsw_ef_construction
        index.hnsw.efSearch = config.hnsw_ef_search
    elif kind == "ivf":
        nlist = config.ivf_nlist or int(max(1, min(n // 39, round(4 * np.sqrt(n)))))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(X)
        index.nprobe = config.ivf_nprobe
    else:
        raise InputError(f"unknown index kind {config.kind!r} (auto, flat, hnsw, ivf)")
    index.add(X)
    return index


def index_kind(index) -> str:
    """``hnsw``, ``ivf`` or ``flat``: which search parameters apply to this FAISS index."""
    faiss = _faiss()
    if isinstance(index, faiss.IndexHNSWFlat) or "HNSW" in type(index).__name__:
        return "hnsw"
    if "IVF" in type(index).__name__:
        return "ivf"
    return "flat"


def kmeans(X: np.ndarray, *, k: int, niter: int = 20, seed: int = 0,
           max_points_per_centroid: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means with FAISS; returns (centroids (k, d), assignment (n,) int32)."""
    faiss = _faiss()
    X = np.ascontiguousarray(X, dtype=np.float32)
    k = int(min(k, len(X)))
    km = faiss.Kmeans(X.shape[1], k, niter=niter, seed=seed, spherical=True, verbose=False,
                      max_points_per_centroid=max_points_per_centroid, min_points_per_centroid=1)
    km.train(X)
    return km.centroids.copy(), assign(km.centroids, X)


def assign(centroids: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Nearest centroid (inner product) for each row of X."""
    faiss = _faiss()
    idx = faiss.IndexFlatIP(centroids.shape[1])
    idx.add(np.ascontiguousarray(centroids, dtype=np.float32))
    _, I = idx.search(np.ascontiguousarray(X, dtype=np.float32), 1)
    return I[:, 0].astype(np.int32)


class TrackIndex:
    """FAISS index + k-means clusters over the embedding rows; learned state ends in ``_``."""

    def __init__(self, config: IndexConfig | None = None) -> None:
        self.config = config or IndexConfig()

    def fit(self, X: np.ndarray) -> "TrackIndex":
        """Build the FAISS index over ``X`` and cluster its rows with k-means; returns self."""
        if len(X) == 0:
            raise InputError("cannot index an empty catalogue")
        c = self.config
        self.index_ = make_index(X, c)
        k = c.n_clusters or default_k(len(X))
        self.centroids_, self.clusters_ = kmeans(X, k=k, niter=c.kmeans_iter, seed=c.seed,
                                                 max_points_per_centroid=c.kmeans_max_points_per_centroid)
        return self

    def reindex(self, X: np.ndarray, config: IndexConfig | None = None) -> "TrackIndex":
        """A new index over ``X`` (the same rows, embedded another way) that keeps this one's clusters."""
        if len(X) != len(self.clusters_):
            raise InputError(f"reindex: {len(X)} rows, the index has {len(self.clusters_)}")
        other = TrackIndex(config or self.config)
        other.index_ = make_index(X, other.config)
        other.centroids_, other.clusters_ = self.centroids_, self.clusters_
        return other

    @property
    def clusters(self) -> np.ndarray:
        """The k-means cluster of every row."""
        return self.clusters_

    @property
    def centroids(self) -> np.ndarray:
        """The (n_clusters, d) spherical k-means centroids."""
        return self.centroids_

    @property
    def kind(self) -> str:
        """``flat``, ``hnsw`` or ``ivf``: the FAISS index type in use."""
        return index_kind(self.index_)

    @property
    def ntotal(self) -> int:
        """Number of indexed rows."""
        return int(self.index_.ntotal)

    @property
    def n_clusters(self) -> int:
        """Number of k-means clusters."""
        return int(len(self.centroids_))

    def search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, row ids) of the k nearest rows for each query row; -1 ids pad short results."""
        Q = np.ascontiguousarray(np.atleast_2d(Q), dtype=np.float32)
        return self.index_.search(Q, int(min(k, self.ntotal)))

    def add(self, X: np.ndarray) -> np.ndarray:
        """Append rows (new tracks) without rebuilding; returns their cluster ids."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        self.index_.add(X)
        new = assign(self.centroids_, X)
        self.clusters_ = np.concatenate([self.clusters_, new]).astype(np.int32)
        return new

    def save(self, directory: str | Path) -> None:
        """Write ``faiss.index`` (FAISS's own writer), ``clusters.npy`` and ``centroids.npy``."""
        faiss = _faiss()
        d = Path(directory)
        faiss.write_index(self.index_, str(d / "faiss.index"))
        np.save(d / "clusters.npy", self.clusters_.astype(np.int32), allow_pickle=False)
        np.save(d / "centroids.npy", self.centroids_.astype(np.float32), allow_pickle=False)

    @classmethod
    def load(cls, directory: str | Path, config: IndexConfig | None = None, *,
             mmap: bool = False) -> "TrackIndex":
        """Read what :meth:`save` wrote and apply ``config``'s search settings (damage: IndexFormatError).

        ``mmap``: map the files read-only (FAISS ``IO_FLAG_MMAP``, numpy ``mmap_mode``) instead of
        copying them.
        """
        faiss = _faiss()
        d = Path(directory)
        self = cls(config)
        try:
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
            self.index_ = faiss.read_index(str(d / "faiss.index"), flags)
        except RuntimeError as exc:  # FAISS puts its own traceback first: the last line says what failed
            line = str(exc).strip().splitlines()
            raise IndexFormatError(f"{d / 'faiss.index'}: unreadable FAISS index "
                                   f"({line[-1] if line else 'read failed'})") from None
        if index_kind(self.index_) == "hnsw":
            self.index_.hnsw.efSearch = self.config.hnsw_ef_search
        elif index_kind(self.index_) == "ivf":
            self.index_.nprobe = self.config.ivf_nprobe
        self.clusters_ = read_npy(d / "clusters.npy", mmap=mmap)
        self.centroids_ = read_npy(d / "centroids.npy", mmap=mmap)
        if len(self.clusters_) != self.ntotal:
            raise IndexFormatError(f"{d}: clusters.npy has {len(self.clusters_)} rows, "
                                   f"faiss.index {self.ntotal}")
        return self
