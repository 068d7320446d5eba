"""FAISS index kinds, k-means clusters, incremental add, save/load and corrupted files."""
from __future__ import annotations

import numpy as np
import pytest

from recsys.errors import IndexFormatError, InputError
from recsys.index import IndexConfig, TrackIndex, default_k


def _data(n=600, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, d))
    X = centres[np.arange(n) % 6] + 0.3 * rng.normal(size=(n, d))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_kinds_search_add_save_load(kind, tmp_path):
    X = _data()
    idx = TrackIndex(IndexConfig(kind=kind, n_clusters=6, ivf_nlist=8, ivf_nprobe=8)).fit(X)
    assert idx.kind == kind
    sims, ids = idx.search(X[:20], 5)
    assert (ids[:, 0] == np.arange(20)).mean() >= 0.95  # a vector is its own nearest neighbour
    assert np.all(np.diff(sims, axis=1) <= 1e-6)
    new = _data(12, seed=3)
    cl = idx.add(new)
    assert idx.ntotal == 612 and len(idx.clusters) == 612 and cl.min() >= 0 and cl.max() < 6
    _, ids = idx.search(new[:3], 1)
    assert set(ids[:, 0].tolist()) <= set(range(600, 612))
    idx.save(tmp_path)
    back = TrackIndex.load(tmp_path, idx.config)
    assert back.ntotal == 612 and np.array_equal(back.clusters_, idx.clusters)
    assert np.array_equal(back.search(X[:5], 3)[1], idx.search(X[:5], 3)[1])


def test_clusters_recover_planted_groups():
    X = _data()
    idx = TrackIndex(IndexConfig(n_clusters=6, seed=1)).fit(X)
    truth = np.arange(600) % 6
    # every planted group lands (almost) entirely in one cluster
    purity = np.mean([np.bincount(idx.clusters[truth == g]).max() / 100 for g in range(6)])
    assert purity > 0.9  # random labels would give about 0.2


def test_auto_kind_and_default_k():
    X = _data(300)
    assert TrackIndex(IndexConfig(flat_max=1000)).fit(X).kind == "flat"
    assert TrackIndex(IndexConfig(flat_max=100)).fit(X).kind == "hnsw"
    assert default_k(2107) == 32 and default_k(3) == 2 and default_k(1) == 1 and default_k(10**7) == 1024
    with pytest.raises(InputError):
        TrackIndex(IndexConfig(kind="annoy")).fit(X)
    with pytest.raises(InputError):
        TrackIndex().fit(X[:0])


def test_corrupted_files(tmp_path):
    idx = TrackIndex(IndexConfig(n_clusters=3)).fit(_data(60))
    idx.save(tmp_path)
    raw = (tmp_path / "faiss.index").read_bytes()
    (tmp_path / "faiss.index").write_bytes(raw[:100])
    with pytest.raises(IndexFormatError, match="faiss.index"):
        TrackIndex.load(tmp_path)
    idx.save(tmp_path)
    (tmp_path / "clusters.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(IndexFormatError, match="clusters.npy"):
        TrackIndex.load(tmp_path)
