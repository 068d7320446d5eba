"""Genre taxonomy: 13 parents, editable table, keyword fallback, unmapped report."""
from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.cli import main
from recsys.errors import SchemaError
from recsys.genres.taxonomy import PARENT_GENRES, Taxonomy, primary_label

TT_GENRES = {
    "edm": ["electro house", "big room", "pop edm", "progressive electro house"],
    "latin": ["tropical", "latin pop", "reggaeton", "latin hip hop"],
    "pop": ["dance pop", "post-teen pop", "electropop", "indie poptimism"],
    "r&b": ["urban contemporary", "hip pop", "new jack swing", "neo soul"],
    "rap": ["hip hop", "southern hip hop", "gangster rap", "trap"],
    "rock": ["album rock", "classic rock", "permanent wave", "hard rock"],
}


def test_thirteen_parents():
    assert len(PARENT_GENRES) == 13 == len(set(PARENT_GENRES))


def test_tidytuesday_genres_and_subgenres_map_to_six_distinct_parents():
    tax = Taxonomy.load()
    parents = {g: tax.parent_of(g) for g in TT_GENRES}
    assert len(set(parents.values())) == 6
    for genre, subs in TT_GENRES.items():
        for sub in subs:
            assert tax.parent_of(sub) == parents[genre], sub


@pytest.mark.parametrize("s, parent", [
    ("melodic death metal", "metal"), ("uk drill", "hip-hop"), ("deep house", "electronic"),
    ("roots reggae", "reggae"), ("bebop", "jazz"), ("delta blues", "blues"), ("baroque", "classical"),
    ("contemporary country", "country"), ("indie folk", "folk-acoustic"), ("shoegaze", "rock"),
    ("K-Pop", "pop"), ("  Latin  Pop ", "latin"), ("philly soul", "r&b-soul"),
])
def test_keyword_rules_cover_unlisted_strings(s, parent):
    assert Taxonomy.load().parent_of(s) == parent


def test_report_lists_unmapped(tmp_path):
    rep = Taxonomy.load().report(["trap", "trap", "vaporwave-ish xyz", None, "deep house"])
    row = rep.set_index("genre")
    assert row.loc["trap", "count"] == 2 and row.loc["trap", "source"] == "table"
    assert row.loc["deep house", "source"] == "keyword"
    assert row.loc["vaporwave-ish xyz", "source"] == "unmapped"
    assert pd.isna(row.loc["vaporwave-ish xyz", "parent"])


def test_user_map_overrides_and_is_validated(tmp_path):
    good = tmp_path / "map.csv"
    good.write_text("genre,parent\n# comment\ntrap,electronic\n")
    assert Taxonomy.load(good).parent_of("trap") == "electronic"
    bad = tmp_path / "bad.csv"
    bad.write_text("genre,parent\ntrap,trip-hop\n")
    with pytest.raises(SchemaError, match="bad.csv:2: unknown parent genre 'trip-hop'"):
        Taxonomy.load(bad)


def test_primary_label_majority_then_first():
    assert primary_label(["pop", "rock", "rock"]) == "rock"
    assert primary_label(["pop", "rock"]) == "pop"
    assert primary_label([None, None]) is None


def test_cli_map_writes_merged_table(demo_csv, tmp_path):
    out = tmp_path / "mapped.parquet"
    rep = tmp_path / "report.csv"
    res = CliRunner().invoke(main, ["genres", "map", "--catalog", str(demo_csv), "--out", str(out),
                                    "--report", str(rep)])
    assert res.exit_code == 0, res.output
    assert "2434 rows -> 2107 tracks" in res.output
    df = pd.read_parquet(out)
    assert df["track_id"].is_unique and df["parent_genre"].notna().all()
    assert set(pd.read_csv(rep)["source"]) <= {"table", "keyword", "parent"}


def test_cli_map_missing_file_is_one_line(tmp_path):
    res = CliRunner().invoke(main, ["genres", "map", "--catalog", str(tmp_path / "x.csv"),
                                    "--out", str(tmp_path / "o.csv")])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and "file not found" in res.output
