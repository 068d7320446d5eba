"""Track search (recsys/search.py): FTS5 over title/artist/album, exact titles first, popularity blend,
accent folding, prefixes, add_tracks, the index file, `recsys search`."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys import search
from recsys.engine import Engine
from recsys.testing.engine import fast_config, make_catalog


def _index(titles, artists=None, albums=None, plays=None, popularity=None):
    n = len(titles)
    prior = search.priors(plays=np.zeros(n) if plays is None else np.asarray(plays, float),
                          popularity=None if popularity is None else np.asarray(popularity, float))
    return search.build(titles=titles, artists=artists or [""] * n, albums=albums or [""] * n, prior=prior)


def test_tokens_fold_case_accents_and_punctuation():
    assert search.tokens("Beyoncé – Déjà Vu (feat. JAY-Z)") == ["beyonce", "deja", "vu", "feat", "jay", "z"]
    assert search.key("  Don't   Stop ") == "don t stop"
    assert search.tokens(None) == [] and search.tokens("!!!") == []


def test_exact_title_first_even_when_unpopular():
    titles = ["Love Story", "Love", "Lovely Day", "Love Love Love", "Crazy in Love"]
    idx = _index(titles, plays=[500, 0, 900, 800, 1000])
    got = idx.search("love", 5)
    assert got[0] == 1  # the exact title, though it was never played
    assert set(got) == {0, 1, 2, 3, 4}
    assert got.index(0) < got.index(4)  # a title starting with the query before one that only contains it


def test_accents_prefix_and_artist_album_fields():
    idx = _index(["Déjà Vu", "Halo", "Single Ladies"], artists=["Beyoncé", "Beyoncé", "Beyoncé"],
                 albums=["B'Day", "I Am... Sasha Fierce", "I Am... Sasha Fierce"])
    assert idx.search("deja vu", 3)[0] == 0
    assert idx.search("DEJA", 3) == [0]
    assert sorted(idx.search("beyon", 5)) == [0, 1, 2]  # the last word is a prefix
    assert sorted(idx.search("sasha", 5)) == [1, 2]  # album matches
    assert idx.search("beyonce halo", 5) == [1]  # every word must match, in any field
    assert idx.search("zzz", 5) == []


def test_popularity_breaks_ties_between_similar_matches():
    idx = _index(["Night Drive Home", "Night Drive Away", "Night Drive Again", "Night Drive"],
                 popularity=[10, 20, 90, 0])
    assert idx.search("night drive", 4)[0] == 3  # exact title
    got = [r for r in idx.search("night dri", 4) if r != 3]
    assert got == [2, 1, 0]  # equally relevant (same length): the most popular first


def test_extended_adds_rows_and_serialises(tmp_path):
    idx = _index(["Alpha", "Beta"])
    idx2 = idx.extended(titles=["Gamma Ray"], artists=["X"], albums=[""], prior=np.zeros(1))
    assert idx2.search("gamma", 3) == [2] and idx.search("gamma", 3) == []
    idx2.save(tmp_path / "s.sqlite")
    back = search.SearchIndex.open(tmp_path / "s.sqlite")
    assert back.n == 3 and back.search("gam", 3) == [2] and back.search("alpha", 3) == [0]


def test_open_refuses_a_missing_or_foreign_file(tmp_path):
    from recsys.errors import IndexFormatError

    with pytest.raises(IndexFormatError):
        search.SearchIndex.open(tmp_path / "nope.sqlite")
    (tmp_path / "bad.sqlite").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(IndexFormatError):
        search.SearchIndex.open(tmp_path / "bad.sqlite")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "index"
    eng = Engine.build(make_catalog(80), simulate_users=20, out=out, config=fast_config(genre_probs=False),
                       seed=0)
    return eng, out


def test_index_directory_has_search_sqlite_and_add_tracks_updates_it(built, tmp_path):
    eng, out = built
    assert (out / "search.sqlite").exists()
    assert "search.sqlite" in json.loads((out / "manifest.json").read_text())["files"]
    loaded = Engine.load(out)
    assert loaded.search("song 7", 3)[0] == eng.search("song 7", 3)[0] == "t0007"
    new = make_catalog(3, seed=5).assign(track_id=["n1", "n2", "n3"],
                                         track_name=["Zebra Crossing", "Zebra Dance", "Quiet"])
    assert loaded.add_tracks(new) == 3
    assert loaded.search("zebra", 5) == ["n1", "n2"]
    loaded.save(tmp_path / "grown")
    assert Engine.load(tmp_path / "grown").search("zebra cro", 5) == ["n1"]


def test_mmap_load_answers_the_same_and_refuses_add_tracks(built):
    from recsys.errors import InputError

    eng, out = built
    mm = Engine.load(out, mmap=True)
    a = [r.track_id for r in Engine.load(out).recommend(["t0003", "t0010"], k=5)]
    assert [r.track_id for r in mm.recommend(["t0003", "t0010"], k=5)] == a
    with pytest.raises(InputError, match="read-only"):
        mm.add_tracks(pd.DataFrame(make_catalog(1, seed=9).assign(track_id=["m1"])))


def test_cli_search(built):
    from click.testing import CliRunner

    from recsys.cli import main

    _, out = built
    res = CliRunner().invoke(main, ["search", "Song 1", "--index", str(out), "-k", "3", "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert body["results"][0]["track_id"] == "t0001" and len(body["results"]) == 3
    res = CliRunner().invoke(main, ["search", "song 12", "--index", str(out)])
    assert res.exit_code == 0 and "t0012" in res.output.splitlines()[0]
    res = CliRunner().invoke(main, ["search", "   ", "--index", str(out)])
    assert res.exit_code == 2 and res.output.startswith("error:")
