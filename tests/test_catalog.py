"""Catalogue loading: schema validation, merging of duplicate tracks, missing values."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.catalog import load_catalog, read_rows, stats_matrix
from recsys.schema import STATS
from recsys.errors import InputError, SchemaError


def _table(n: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"track_id": [f"t{i}" for i in range(n)]})
    for col in STATS:
        df[col] = rng.uniform(0, 1, n)
    df["tempo"] = 120.0
    df["loudness"] = -6.0
    df["duration_ms"] = 200000
    df["key"] = 5
    return df


def test_tidytuesday_demo_merges_duplicates_and_keeps_all_labels(demo_csv):
    rows = read_rows(demo_csv)
    cat = load_catalog(demo_csv)
    assert len(rows) == 2434
    assert cat["track_id"].is_unique
    assert len(cat) == rows["track_id"].nunique()
    multi = cat[cat["n_listings"] > 1]
    assert len(multi) > 0
    # every genre a track was listed under survives the merge
    for _, row in multi.head(20).iterrows():
        listed = set(rows.loc[rows["track_id"] == row["track_id"], "playlist_genre"])
        assert set(row["genres"]) == listed
    assert set(cat["parent_genre"].dropna()) == {"pop", "rock", "hip-hop", "r&b-soul", "electronic", "latin"}
    assert cat["release_year"].notna().mean() > 0.95


def test_parquet_roundtrip(tmp_path):
    df = _table()
    df.to_parquet(tmp_path / "c.parquet")
    cat = load_catalog(tmp_path / "c.parquet")
    assert list(cat["track_id"]) == ["t0", "t1", "t2", "t3"]
    assert stats_matrix(cat).dtype == np.float32


def test_missing_values_are_kept_and_counted(tmp_path):
    df = _table()
    df.loc[1, "energy"] = np.nan
    cat = load_catalog(df)
    assert np.isnan(cat.loc[cat.track_id == "t1", "energy"]).all()
    assert cat.set_index("track_id").loc["t1", "n_missing_stats"] == 1


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.drop(columns=["track_id"]), "missing column track_id"),
        (lambda d: d.assign(energy=["x", 0.1, 0.2, 0.3]),
         "column energy must be numeric, got 'x' at row 1 (track_id t0)"),
        (lambda d: d.assign(danceability=[0.1, 7.0, 0.2, 0.3]), "column danceability value 7.0 outside"),
        (lambda d: d.assign(track_id=["a", None, "c", "d"]), "column track_id is empty at row 2"),
        (lambda d: d.iloc[0:0], "table is empty"),
    ],
)
def test_schema_errors_name_column_and_row(mutate, message):
    with pytest.raises(SchemaError) as err:
        load_catalog(mutate(_table()))
    assert message in str(err.value)


def test_statistics_are_optional_missing_columns_become_nan():
    """A Spotify import after 2024 has no statistics: it loads, and says what it lacks."""
    from recsys.catalog import stats_coverage

    cat = load_catalog(_table().drop(columns=["tempo"]).assign(valence=np.nan))
    assert cat["tempo"].isna().all() and cat["valence"].isna().all() and cat["energy"].notna().all()
    bare = load_catalog(pd.DataFrame({"track_id": ["a", "b", "a"], "track_name": ["A", "B", "A"],
                                      "duration_ms": [1.0, 2.0, 1.0]}))
    assert list(bare["track_id"]) == ["a", "b"] and bare["danceability"].isna().all()
    cov = stats_coverage(bare)
    assert cov["without_stats"] == 2 and cov["tracks"] == 2 and "duration_ms" not in cov["empty_columns"]
    assert set(cov["empty_columns"]) == set(STATS) - {"duration_ms"}


def test_fill_stats_only_fills_missing_values(tmp_path):
    from recsys.catalog import fill_stats, read_stats

    cat = load_catalog(_table().assign(energy=[np.nan, 0.2, np.nan, np.nan]))
    pd.DataFrame({"track_id": ["t0", "t1", "zz"], "energy": [0.9, 0.9, 0.9], "ok": [True, True, True],
                  "file": ["a.flac", "b.flac", "c.flac"]}).to_parquet(tmp_path / "s.parquet")
    filled, n = fill_stats(cat, read_stats(tmp_path / "s.parquet"))
    assert n == 1 and filled["energy"].tolist()[:2] == [0.9, 0.2] and np.isnan(filled["energy"].iloc[2])


def test_unreadable_inputs(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_catalog(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        load_catalog(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("track_id," + ",".join(STATS) + "\n")
    with pytest.raises(InputError, match="empty"):
        load_catalog(tmp_path / "header.csv")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="cannot read parquet"):
        load_catalog(tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="unsupported table extension"):
        load_catalog(tmp_path / "x.xlsx")


def test_one_track_id_for_two_songs_is_an_error_naming_both_rows(tmp_path):
    """Two different songs under one id: an error naming both rows, or keep-first when asked (CLI)."""
    from click.testing import CliRunner

    from recsys.cli import main
    from recsys.testing.engine import make_catalog

    cat = make_catalog(40)
    clash = cat.iloc[[5]].copy()
    clash["track_name"], clash["energy"] = "A Different Song", 0.01
    same = cat.iloc[[6]].copy()  # a plain duplicate (another playlist) stays fine
    pd.concat([cat, clash, same]).to_csv(tmp_path / "c.csv", index=False)
    args = ["build-index", "--catalog", str(tmp_path / "c.csv"), "--simulate-users", "0", "--no-genre-probs"]
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "i")])
    assert r.exit_code == 2 and "track_id t0005: row 6 and row 41" in r.output and "--on-conflict" in r.output
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "i"), "--on-conflict", "first"])
    assert r.exit_code == 0, r.output
    kept = pd.read_parquet(tmp_path / "i" / "tracks.parquet").set_index("track_id")
    assert kept.loc["t0005", "track_name"] == cat.loc[5, "track_name"]
