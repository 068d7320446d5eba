"""After the closures: import (audio-features 403) -> playlists as histories -> build-index -> recommend.

End to end through the CLI against the loopback stand-in of the Web API; no statistics anywhere.
"""
from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.cli import main
from recsys.spotify.importer import LIKED_ID, playlist_histories
from recsys.testing.spotify import make_track, write_user_token

GENRES = ["dance pop", "hard rock", "cool jazz", "trap", "deep house", "country"]


def run(*args: str):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    return res


def _library(fake, n: int = 150):
    """Tracks by 12 artists with genres, three overlapping playlists and liked songs; no audio features."""
    artists = [(f"art{a:019d}", f"Band {a}") for a in range(12)]
    tracks = [make_track(i, artists=[artists[i % 12]], popularity=(i * 37) % 100) for i in range(n)]
    for i, t in enumerate(tracks):
        t["external_ids"] = {"isrc": f"USRC1{i:07d}"}  # kept as track_isrc for `spotify match`
    fake.add_tracks(tracks, features=False)
    for a, (aid, _) in enumerate(artists):
        fake.set_artist_genres(aid, [GENRES[a % len(GENRES)]])
    fake.audio_features_forbidden = True
    order = list(range(n))
    fake.add_playlist("plMorning", "Morning", [tracks[i] for i in order[:70]] + [None])
    fake.add_playlist("plRun", "Run", [tracks[i] for i in order[40:120:2] + order[50:60]]
                      + [make_track(999, local=True)])
    fake.add_playlist("plEvening", "Evening", [tracks[i] for i in order[90:] + order[:20]])
    fake.save_tracks([tracks[i] for i in order[10:130:3]])  # newest like first, as the API lists them
    fake.fail("GET", r"/playlists/plRun/items", 429, headers={"Retry-After": "1"})
    return tracks


def test_playlist_histories_keep_order_and_added_at():
    rows = pd.DataFrame({"playlist_id": ["p", "p", "q", LIKED_ID, LIKED_ID, "p"],
                         "track_id": ["a", "b", "a", "new", "old", "a"],
                         "added_at": ["t1", "t2", "t3", "2024-02", "2023-01", "t4"],
                         "playlist_name": ["P", "P", "Q", "Liked Songs", "Liked Songs", "P"],
                         "source": ["playlist"] * 3 + ["liked"] * 2 + ["playlist"]})
    h = playlist_histories(rows)
    p = h[h.user_id == "p"]
    assert p["track_id"].tolist() == ["a", "b", "a"] and p["position"].tolist() == [0, 1, 2]
    assert p["added_at"].tolist() == ["t1", "t2", "t4"]
    assert h[h.user_id == LIKED_ID]["track_id"].tolist() == ["old", "new"]  # oldest like first
    assert len(playlist_histories(rows.iloc[0:0])) == 0


@pytest.mark.slow
def test_import_histories_build_recommend_without_statistics(fake, spotify_env, tmp_path):
    tracks = _library(fake)
    write_user_token(spotify_env["RECSYS_CONFIG_DIR"], fake)
    cat, plays, idx = tmp_path / "sp.parquet", tmp_path / "plays.parquet", tmp_path / "idx"
    res = run("spotify", "import", "--playlist", "https://open.spotify.com/playlist/plMorning?si=x",
              "--playlist", "plRun", "--playlist", "spotify:playlist:plEvening", "--liked",
              "--out", cat, "--histories-out", plays, "--no-progress")
    assert res.output.count("Spotify refused audio-features (403)") == 1
    assert "histories: 4 (3 playlist(s) + liked songs)" in res.output
    df = pd.read_parquet(cat)
    assert df["danceability"].isna().all() and df["tempo"].isna().all()  # no statistics anywhere
    isrc = {t["id"]: t["external_ids"]["isrc"] for t in tracks}
    assert (df["track_isrc"] == df["track_id"].map(isrc)).all()
    h = pd.read_parquet(plays)
    assert set(h["user_id"]) == {"plMorning", "plRun", "plEvening", LIKED_ID}
    morning = h[h.user_id == "plMorning"].sort_values("position")
    assert morning["track_id"].tolist() == [t["id"] for t in tracks[:70]]  # playlist order, null skipped
    assert h["added_at"].notna().all()
    liked = h[h.user_id == LIKED_ID].sort_values("position")["track_id"].tolist()
    assert liked[-1] == tracks[10]["id"]  # the newest like is the last play

    config = tmp_path / "engine.toml"
    config.write_text('[engine.projection]\nmethod = "pca"\n')
    res = run("build-index", "--catalog", cat, "--histories", plays, "--out", idx, "--config", config)
    n = df["track_id"].nunique()
    assert f"warning: no audio statistics for {n} of {n} tracks: content similarity and the map use " \
           "metadata only" in res.output
    assert "histories: 4 users" in res.output

    t = pd.read_parquet(idx / "tracks.parquet")
    assert t["danceability"].isna().all() and t["track_album_id"].notna().all()  # none in the index either
    res = run("recommend", "--index", idx, "--user", "plRun", "-k", "5")
    lines = res.output.splitlines()
    numbered = [s for s in lines if s[:3].strip().rstrip(".").isdigit()]
    assert len(numbered) == 5, res.output
    reasons = [s for s in lines if s.strip().startswith("·")]
    assert len(reasons) >= 5 and "note:" not in res.output
    res = run("recommend", "--index", idx, "--recent", tracks[41]["id"], "--recent", tracks[43]["id"],
              "-k", "5", "--json")
    import json

    recs = json.loads(res.output)
    assert len(recs) == 5 and all(r["reasons"] for r in recs)
    res = run("similar", "--index", idx, "--track", tracks[3]["id"], "-k", "5")
    assert len([s for s in res.output.splitlines() if s[:3].strip().rstrip(".").isdigit()]) == 5
    res = run("report", tracks[3]["id"], "--index", idx, "--out", tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
