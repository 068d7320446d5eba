"""Synthetic users: seeded, well-formed, with repeats, skips, popularity bias; histories reading."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.errors import InputError, SchemaError
from recsys.users import SimulationConfig, read_histories, simulate_users

from recsys.testing.engine import make_catalog


@pytest.fixture(scope="module")
def catalog():
    from recsys.catalog import load_catalog

    return load_catalog(make_catalog(200))


def test_reproducible_and_seed_dependent(catalog):
    a = simulate_users(catalog, SimulationConfig(n_users=40, seed=7))
    b = simulate_users(catalog, SimulationConfig(n_users=40, seed=7))
    c = simulate_users(catalog, SimulationConfig(n_users=40, seed=8))
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_shape_repeats_skips(catalog):
    h = simulate_users(catalog, SimulationConfig(n_users=80, seed=1, repeat_prob=0.1, skip_prob=0.1))
    assert list(h.columns) == ["user_id", "position", "track_id", "session", "skipped"]
    assert h["user_id"].nunique() == 80
    assert h["track_id"].isin(set(catalog["track_id"])).all()
    assert (h.groupby("user_id")["position"].apply(lambda p: (np.diff(p) == 1).all())).all()
    repeats = h.duplicated(["user_id", "track_id"]).mean()
    assert 0.02 < repeats < 0.6
    assert 0.01 < h["skipped"].mean() < 0.4
    none = simulate_users(catalog, SimulationConfig(n_users=30, seed=1, repeat_prob=0.0, skip_prob=0.0,
                                                    follow_prob=0.0))
    assert not none["skipped"].any()


def test_popularity_bias_and_taste(catalog):
    h = simulate_users(catalog, SimulationConfig(n_users=150, seed=2, zipf_a=1.5))
    counts = h["track_id"].value_counts()
    assert counts.iloc[:10].sum() > 3 * counts.iloc[-10:].sum()
    # tastes concentrate: a user's most played parent genre covers well over a uniform share
    g = h.merge(catalog[["track_id", "parent_genre"]], on="track_id")
    top_share = g.groupby("user_id")["parent_genre"].agg(lambda s: s.value_counts(normalize=True).iloc[0])
    assert top_share.mean() > 0.45


def test_groups_follow_clusters(catalog):
    groups = np.arange(len(catalog)) % 10
    h = simulate_users(catalog, SimulationConfig(n_users=50, seed=3, stickiness=0.95, follow_prob=0.0,
                                                 repeat_prob=0.0), groups=groups)
    row = {t: i for i, t in enumerate(catalog["track_id"])}
    g = h["track_id"].map(row).to_numpy() % 10
    same = (g[1:] == g[:-1])[(h["user_id"].to_numpy()[1:] == h["user_id"].to_numpy()[:-1])]
    assert same.mean() > 0.6


def test_bad_input(catalog):
    with pytest.raises(InputError):
        simulate_users(catalog, SimulationConfig(n_users=0))
    with pytest.raises(InputError):
        simulate_users(catalog.iloc[:0])


@pytest.mark.parametrize("ext", ["csv", "tsv", "parquet"])
def test_read_histories_by_extension(tmp_path, ext):
    from recsys.io import write_table

    df = pd.DataFrame({"user_id": ["b", "a", "a"], "position": [0, 1, 0], "track_id": ["x", "y", "z"]})
    write_table(df, tmp_path / f"h.{ext}")
    h = read_histories(tmp_path / f"h.{ext}")
    assert (h[["user_id", "position", "track_id"]].values.tolist()
            == [["a", 0, "z"], ["a", 1, "y"], ["b", 0, "x"]])


def test_read_histories_errors(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("user_id,position,track_id\n")
    with pytest.raises(InputError, match="empty"):
        read_histories(p)
    p.write_text("user,track\n1,2\n")
    with pytest.raises(SchemaError, match="user_id"):
        read_histories(p)
    p.write_text("user_id,position,track_id\na,first,x\n")
    with pytest.raises(SchemaError, match="position"):
        read_histories(p)
