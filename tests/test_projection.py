"""2-D map: PCA outside the UMAP range, UMAP keeps groups apart, transform after save/load, engine."""
from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.errors import InputError
from recsys.projection import Projection, ProjectionConfig, load_map, save_map


def groups(n_per: int = 30, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    C = rng.normal(size=(3, dim))
    X = np.vstack([C[g] + 0.15 * rng.normal(size=(n_per, dim)) for g in range(3)]).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, np.repeat(np.arange(3), n_per)


def separation(P: np.ndarray, y: np.ndarray) -> float:
    """Smallest distance between group centres over the largest within-group spread."""
    cent = np.array([P[y == g].mean(0) for g in range(3)])
    between = min(np.linalg.norm(cent[a] - cent[b]) for a in range(3) for b in range(a + 1, 3))
    within = max(np.linalg.norm(P[y == g] - cent[g], axis=1).mean() for g in range(3))
    return between / within


def test_auto_uses_pca_below_the_threshold():
    X, y = groups()
    p = Projection().fit(X)
    assert p.method_ == "pca" and p.positions_.shape == (90, 2) and p.fitted_.all()
    assert separation(p.positions_, y) > 2
    np.testing.assert_allclose(p.transform(X[:5]), p.positions_[:5], atol=1e-5)
    assert Projection(ProjectionConfig(min_umap_tracks=50, max_umap_tracks=80)).fit(X).method_ == "pca"
    assert Projection(ProjectionConfig(min_umap_tracks=50)).fit(X).method_ == "umap"


def test_unknown_method_is_an_input_error():
    with pytest.raises(InputError, match="projection method"):
        Projection(ProjectionConfig(method="tsne")).fit(groups()[0])


@pytest.fixture(scope="module")
def umap_fit():
    X, y = groups()
    return X, y, Projection(ProjectionConfig(method="umap", seed=0)).fit(X)


def test_umap_keeps_groups_apart_and_records_its_parameters(umap_fit):
    X, y, p = umap_fit
    assert p.method_ == "umap" and np.isfinite(p.positions_).all()
    assert separation(p.positions_, y) > 2
    d = p.to_dict()
    assert d["params"]["n_neighbors"] == 15 and d["params"]["a"] > 0 and d["params"]["metric"] == "euclidean"
    json.dumps(d)  # JSON-able, nothing pickled


def test_umap_transform_places_new_rows_with_their_group(umap_fit, tmp_path):
    X, y, p = umap_fit
    rng = np.random.default_rng(5)
    new = X[[3, 33, 63]] + 0.02 * rng.normal(size=(3, X.shape[1])).astype(np.float32)
    pos = p.transform(new, reference=X)
    cent = np.array([p.positions_[y == g].mean(0) for g in range(3)])
    assert [int(np.argmin(np.linalg.norm(cent - q, axis=1))) for q in pos] == [0, 1, 2]
    # after a save/load round trip the same parameters give the same positions
    ids = [f"t{i}" for i in range(len(X))]
    save_map(p, ids, tmp_path)
    q = load_map(tmp_path, ids)
    np.testing.assert_allclose(q.positions_, p.positions_)
    np.testing.assert_allclose(q.transform(new, reference=X), pos, atol=1e-5)
    with pytest.raises(Exception, match="do not match"):
        load_map(tmp_path, ids[::-1])


def test_umap_fits_a_sample_and_transforms_the_rest():
    X, y = groups(n_per=40)
    p = Projection(ProjectionConfig(method="umap", max_fit=60, seed=1)).fit(X)
    assert p.fitted_.sum() == 60 and np.isfinite(p.positions_).all()
    assert separation(p.positions_, y) > 1.5


def test_engine_saves_loads_and_extends_the_map(tmp_path):
    from recsys.engine import Engine
    from recsys.testing.engine import fast_config, make_catalog

    cfg = fast_config(genre_probs=False)
    cfg.projection = ProjectionConfig(method="umap")
    cat = make_catalog(90)
    eng = Engine.build(cat, simulate_users=10, out=tmp_path / "idx", config=cfg, seed=0)
    man = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert "map.parquet" in json.dumps(man) and "projection.json" in json.dumps(man)  # checksummed files
    loaded = Engine.load(tmp_path / "idx")
    assert loaded.projection.method == "umap"
    np.testing.assert_allclose(loaded.projection.positions, eng.projection.positions)
    twin = cat.iloc[[7]].assign(track_id="twin7", track_name="Twin of 7")
    assert loaded.add_tracks(twin) == 1
    P = loaded.projection.positions
    assert P.shape == (91, 2) and not loaded.projection.fitted[-1]
    extent = np.ptp(P, axis=0).max()
    assert np.linalg.norm(P[-1] - P[7]) < 0.1 * extent  # a copy of track 7 lands next to it
    loaded.save(tmp_path / "idx2")
    again = Engine.load(tmp_path / "idx2")
    np.testing.assert_allclose(again.projection.positions, P)
