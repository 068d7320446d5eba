"""Statistics are optional: a catalogue without the 12 statistics builds, recommends, reports and serves."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from recsys.engine import Engine
from recsys.schema import STATS
from recsys.testing.engine import fast_config, make_catalog, planted_histories


def _bare(n: int = 60) -> pd.DataFrame:
    """Metadata (name, artist, popularity, genre), a release year and duration; no statistics."""
    cat = make_catalog(n).drop(columns=[s for s in STATS if s != "duration_ms"])
    cat["track_album_release_date"] = [f"{1990 + i % 30}-05-01" for i in range(n)]
    return cat


def _build(cat, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eng = Engine.build(cat, histories=planted_histories(cat, n_users=20), config=fast_config(), **kw)
    return eng, [str(w.message) for w in caught if "audio statistics" in str(w.message)]


@pytest.fixture(scope="module")
def bare_index(tmp_path_factory):
    out = tmp_path_factory.mktemp("bare") / "idx"
    eng, notes = _build(_bare(), out=out)
    return eng, notes, out


def test_build_without_statistics_says_what_is_missing_in_one_line(bare_index):
    eng, notes, _ = bare_index
    assert len(notes) == 1
    assert notes[0].startswith("no audio statistics for 60 of 60 tracks: content similarity and the map use "
                               "metadata only")
    assert "add --stats FILE or a music folder" in notes[0] and "\n" not in notes[0]
    cols = eng.builder.columns("tabular")
    assert {"release_year", "track_popularity"} <= set(cols)
    assert any(c.startswith("label_") for c in cols) and not any(c.startswith("p_") for c in cols)
    assert eng.block_presence == {"tabular": 60}
    assert eng.stats["tracks_without_stats"] == 60


def test_recommend_similar_report_and_reload_without_statistics(bare_index):
    from recsys.report import track_report

    eng, _, out = bare_index
    recs = eng.recommend(["t0001", "t0002"], k=5)
    assert len(recs) == 5 and all(r.reasons for r in recs)
    sim = eng.similar("t0003", k=5)
    assert len(sim) == 5
    # labels carry content: the nearest neighbours share the track's parent genre more often than chance
    g = eng.tracks.frame.set_index("track_id")["parent_genre"]
    assert sum(g[r.track_id] == g["t0003"] for r in sim) >= 3
    again = Engine.load(out)
    assert [r.track_id for r in again.recommend(["t0001", "t0002"], k=5)] == [r.track_id for r in recs]
    assert track_report(again, "t0001")[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_says_there_are_no_statistics_instead_of_empty_axes(bare_index, monkeypatch):
    from matplotlib.figure import Figure

    from recsys.report import track_report

    texts: list[str] = []
    orig = Figure.savefig

    def spy(fig, *a, **k):
        texts.extend(t.get_text() for ax in fig.axes for t in ax.texts)
        return orig(fig, *a, **k)

    monkeypatch.setattr(Figure, "savefig", spy)
    eng, _, _ = bare_index
    track_report(eng, "t0004")
    # the one statistic there is (duration) is drawn; the eleven without values are named, not drawn empty
    assert any("no values in this index for 11 statistic(s)" in t and "danceability" in t for t in texts)
    assert len([a for a in texts if "missing" in a]) == 0
    texts.clear()
    bare, _ = _build(_bare(30).drop(columns=["duration_ms"]))
    track_report(bare, "t0004")
    assert any("no track in this index has audio statistics" in t for t in texts)


def test_page_api_serves_an_index_without_statistics(bare_index):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from recsys.serve import ServeOptions, create_app

    _, _, out = bare_index
    client = TestClient(create_app(ServeOptions(index=str(out))), client=("127.0.0.1", 50000))
    track = client.get("/api/tracks/t0001")
    assert track.status_code == 200
    assert track.json()["statistics"]["danceability"] == {"value": None, "percentile": None}
    points = client.get("/api/map").json()["points"]
    assert len(points) == 60 and all(np.isfinite([p["x"], p["y"]]).all() for p in points)
    assert client.post("/api/recommend", json={"recent": ["t0001"], "k": 5}).status_code == 200
    assert client.get("/api/tracks/t0001/report.png").status_code == 200


def test_stats_table_fills_the_index_and_partial_coverage_is_named(tmp_path):
    full = make_catalog(60)
    stats = full.iloc[:20][["track_id", *STATS]]
    stats.to_parquet(tmp_path / "audiostats.parquet")
    eng, notes = _build(_bare(), stats=tmp_path / "audiostats.parquet")
    assert eng.stats["stats_filled"] == 20
    assert len(notes) == 1 and notes[0].startswith("no audio statistics for 40 of 60 tracks: their content "
                                                   "similarity and map position use metadata only")
    t = eng.tracks.frame.set_index("track_id")
    assert t.loc["t0005", "danceability"] == pytest.approx(full.loc[5, "danceability"])
    assert np.isnan(t.loc["t0030", "danceability"])
    # every track has a content vector: filled ones by statistics, the rest by their metadata
    assert eng.block_presence == {"tabular": 60}


def test_missing_note_counts_tracks_the_audio_blocks_cover():
    from recsys.blocks import Block
    from recsys.catalog import missing_stats_note, stats_coverage

    cat = pd.DataFrame({"track_id": list("abcd"), "energy": [0.5, np.nan, np.nan, np.nan]})
    cov = stats_coverage(cat)
    audio = Block("spectral", np.zeros((4, 2), np.float32), np.array([True, True, False, False]), ["x", "y"])
    note = missing_stats_note(cov, [audio])
    assert note.startswith("no audio statistics for 3 of 4 tracks: their content similarity and map position "
                           "use metadata (1 of them also the audio blocks spectral)")
    assert missing_stats_note(stats_coverage(make_catalog(10)), []) is None
