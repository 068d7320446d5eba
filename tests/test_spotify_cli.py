"""End to end through the CLI, env vars pointing recsys at the fake Web API on 127.0.0.1."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from recsys.testing.spotify import CLIENT_ID, CLIENT_SECRET, USER_ID, make_track, write_user_token
from recsys.catalog import load_catalog
from recsys.cli import main


def run(*args: str, ok: bool = True):
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


def _playlist(fake, name: str) -> dict:
    (meta,) = [p for p in fake.user_playlists() if p["name"] == name]
    return meta


def _writes(fake) -> list:
    return [r for r in fake.requests if r.path.startswith("/v1/") and r.method in ("POST", "PUT", "DELETE")]


# ---- import ----------------------------------------------------------------------------------------
def test_cli_import_complete_across_pages_and_faults(fake, spotify_env, tmp_path):
    tracks = [make_track(i) for i in range(240)]
    fake.add_tracks(tracks)
    fake.add_playlist("plX", "Rock picks", tracks[:180] + [None, make_track(990, local=True)])
    fake.add_playlist("plY", "Mixed", tracks[150:] + [make_track(991, playable=False)])
    fake.set_artist_genres(tracks[0]["artists"][0]["id"], ["dance pop"])
    fake.fail("GET", r"/playlists/plX/items", 429, headers={"Retry-After": "1"})
    fake.fail("GET", r"/playlists/plY/items", 500, times=2)
    fake.fail("GET", r"/v1/artists", 503)
    out = tmp_path / "cat.parquet"
    res = run("spotify", "import", "--playlist", "https://open.spotify.com/playlist/plX?si=zz=rock",
              "--playlist", "spotify:playlist:plY", "--out", str(out), "--no-progress")
    assert "imported 270 rows (240 tracks) from 2 source(s)" in res.output
    assert "skipped items: local 1, null 1, unavailable 1" in res.output
    df = pd.read_parquet(out)
    assert len(df) == 270 and set(df["track_id"]) == {t["id"] for t in tracks}
    cat = load_catalog(out)
    assert len(cat) == 240 and cat["n_missing_stats"].sum() == 0
    both = cat.set_index("track_id").loc[tracks[160]["id"]]
    assert sorted(both["playlists"]) == ["Mixed", "Rock picks"]
    assert set(df.loc[df.playlist_id == "plX", "playlist_genre"]) == {"rock"}
    artist0 = df[(df.playlist_id == "plY") & (df.track_artist_ids == tracks[0]["artists"][0]["id"])]
    assert len(artist0) and set(artist0["playlist_genre"]) == {"pop"}  # from artist genres
    assert not list(tmp_path.glob(".cat.parquet.partial"))


def test_cli_import_without_audio_features_explains_and_fills_from_stats(fake, spotify_env, tmp_path):
    tracks = [make_track(i) for i in range(30)]
    fake.add_tracks(tracks)
    fake.add_playlist("plZ", "Z", tracks)
    fake.audio_features_forbidden = True
    out = tmp_path / "z.csv"
    res = run("spotify", "import", "--playlist", "plZ=jazz", "--out", str(out), "--no-progress")
    assert res.output.count("Spotify refused audio-features (403)") == 1
    assert "30 track(s) have no audio statistics" in res.output and "--stats" in res.output
    assert "still builds an index" in res.output and "recsys spotify match" in res.output
    assert len(pd.read_csv(out)) == 30  # written anyway
    stats = pd.DataFrame({"track_id": [t["id"] for t in tracks], "danceability": 0.4, "energy": 0.5,
                          "key": 3, "loudness": -9.0, "mode": 1, "speechiness": 0.1, "acousticness": 0.2,
                          "instrumentalness": 0.0, "liveness": 0.1, "valence": 0.3, "tempo": 100.0})
    stats.to_csv(tmp_path / "stats.csv", index=False)
    res = run("spotify", "import", "--playlist", "plZ=jazz", "--out", str(out), "--no-progress",
              "--stats", str(tmp_path / "stats.csv"))
    assert "30 filled from --stats, 0 track(s) without any" in res.output
    cat = load_catalog(out)
    assert cat["n_missing_stats"].sum() == 0 and set(cat["parent_genre"]) == {"jazz"}


def test_cli_errors_are_one_line(fake, spotify_env, tmp_path, monkeypatch):
    res = run("spotify", "import", "--out", str(tmp_path / "x.csv"), ok=False)
    assert res.exit_code == 2 and res.output.strip().startswith("error: give at least one --playlist")
    monkeypatch.delenv("RECSYS_SPOTIFY_CLIENT_SECRET")
    res = run("spotify", "import", "--playlist", "abc", "--auth", "app", "--out", str(tmp_path / "x.csv"),
              ok=False)
    assert res.exit_code == 2 and "client secret" in res.output and len(res.output.strip().splitlines()) == 1
    res = run("spotify", "liked", "--out", str(tmp_path / "x.csv"), ok=False)  # no cached login: no hang
    assert res.exit_code == 2 and "run `recsys spotify login` first" in res.output
    assert fake.requests == []


def test_cli_debug_logging_never_shows_credentials(fake, spotify_env, tmp_path):
    fake.add_tracks([make_track(i) for i in range(3)])
    fake.add_playlist("plQ", "Q", [make_track(i) for i in range(3)])
    fake.save_tracks([make_track(i) for i in range(3)])
    write_user_token(Path(spotify_env["RECSYS_CONFIG_DIR"]), fake, token="user-tok-secret")
    fake.expire_token("user-tok-secret")  # forces a refresh round trip as well
    out = tmp_path / "q.csv"
    code = "from recsys.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", code, "-vv", "spotify", "import", "--playlist", "plQ",
                           "--liked", "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-2000:]
    assert "DEBUG" in text and "Sending" in text  # debug logging really was on
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    for secret in (CLIENT_SECRET, basic, "user-tok-secret", "refresh-initial",
                   *[t for t in fake.tokens if t.startswith("tok-")]):
        assert secret not in text


# ---- sort-liked --------------------------------------------------------------------------------------
GENRES = ("pop", "rock", "jazz")


def _liked_setup(fake, env, tmp_path, n=320):
    tracks = [make_track(i) for i in range(n)]
    fake.add_tracks(tracks)
    fake.save_tracks(tracks + [None])
    write_user_token(Path(env["RECSYS_CONFIG_DIR"]), fake)
    preds = pd.DataFrame({"track_id": [t["id"] for t in tracks],
                          "predicted_genre": [GENRES[i % 3] for i in range(n)]})
    path = tmp_path / "preds.csv"
    preds.to_csv(path, index=False)
    return tracks, preds, path


def test_sort_liked_dry_run_apply_and_idempotent(fake, spotify_env, tmp_path):
    tracks, preds, path = _liked_setup(fake, spotify_env, tmp_path)
    want = {g: preds.loc[preds.predicted_genre == g, "track_id"].tolist() for g in GENRES}
    res = run("spotify", "sort-liked", "--predictions", str(path), "--genres", "pop,rock", "--no-progress")
    assert "liked songs: 320 tracks (null 1 skipped)" in res.output
    assert "'recsys: pop': create; 107 predicted, 0 already there, +107 to add" in res.output
    assert "'recsys: rock': create; 107 predicted" in res.output
    assert "not placed (genre not chosen): jazz 106" in res.output and "dry run" in res.output
    assert _writes(fake) == [] and fake.user_playlists() == []

    res = run("spotify", "sort-liked", "--predictions", str(path), "--genres", "pop,rock", "--apply",
              "--no-progress")
    assert "applied: 2 playlist(s) created, 214 track(s) added, 0 removed" in res.output
    pop, rock = _playlist(fake, "recsys: pop"), _playlist(fake, "recsys: rock")
    assert fake.playlist_track_ids(pop["id"]) == want["pop"]
    assert fake.playlist_track_ids(rock["id"]) == want["rock"]
    assert pop["public"] is False and "[recsys:pop]" in pop["description"]
    creates = [r for r in _writes(fake) if r.path == "/v1/me/playlists"]
    assert [c.body["name"] for c in creates] == ["recsys: pop", "recsys: rock"]
    adds = [r for r in _writes(fake) if r.path.endswith("/items") and r.method == "POST"]
    sizes = [len(r.body if isinstance(r.body, list) else r.body["uris"]) for r in adds]
    assert sizes == [100, 7, 100, 7]
    assert all(u.startswith("spotify:track:") for r in adds for u in (r.body if isinstance(r.body, list)
                                                                       else r.body["uris"]))
    state = json.loads((Path(spotify_env["RECSYS_CONFIG_DIR"]) / "spotify-playlists.json").read_text())
    assert state["users"][USER_ID]["rock"]["added"] == want["rock"]

    n_writes = len(_writes(fake))
    res = run("spotify", "sort-liked", "--predictions", str(path), "--genres", "pop,rock", "--apply",
              "--no-progress")
    assert "applied: nothing to change" in res.output and "unchanged" in res.output
    assert len(_writes(fake)) == n_writes  # the second run changed nothing
    assert fake.playlist_track_ids(pop["id"]) == want["pop"]

    # the user edits the rock playlist, and the model changes its mind about one track
    foreign = make_track(5000)
    fake.add_tracks([foreign])
    removed_by_user = want["rock"][0]
    moved = want["rock"][1]
    with fake.lock:
        items = fake.playlists[rock["id"]]["items"]
        items[:] = [it for it in items if it["_track"]["id"] != removed_by_user]
        items.append({"added_at": "2026-02-02T00:00:00Z", "is_local": False, "_track": foreign})
    preds.loc[preds.track_id == moved, "predicted_genre"] = "pop"
    preds.to_csv(path, index=False)
    res = run("spotify", "sort-liked", "--predictions", str(path), "--genres", "pop,rock", "--apply",
              "--no-progress")
    assert "1 you removed (left out)" in res.output and "1 of yours kept" in res.output
    assert "applied: 0 playlist(s) created, 1 track(s) added, 1 removed" in res.output
    new_pop = [t for t in preds.loc[preds.predicted_genre == "pop", "track_id"] if t != moved] + [moved]
    assert fake.playlist_track_ids(pop["id"]) == new_pop
    expected_rock = [t for t in want["rock"] if t not in (removed_by_user, moved)] + [foreign["id"]]
    assert fake.playlist_track_ids(rock["id"]) == expected_rock
    n_writes = len(_writes(fake))
    res = run("spotify", "sort-liked", "--predictions", str(path), "--genres", "pop,rock", "--apply",
              "--no-progress")
    assert "applied: nothing to change" in res.output and len(_writes(fake)) == n_writes

    # local state lost: playlists are found again by their description marker, nothing foreign removed
    (Path(spotify_env["RECSYS_CONFIG_DIR"]) / "spotify-playlists.json").unlink()
    for i in range(60):  # discovery has to page through the user's playlists
        fake.add_playlist(f"other{i}", f"Other {i}", [], owner=USER_ID)
    fake.requests.clear()
    res = run("spotify", "sort-liked", "--predictions", str(path), "--genres", "pop,rock", "--apply",
              "--no-progress")
    # re-adds what it forgot
    assert "applied: 0 playlist(s) created, 1 track(s) added, 0 removed" in res.output
    assert len(fake.user_playlists()) == 62  # nothing created: both found by marker
    assert [r.query["offset"] for r in fake.calls("GET", r"^/v1/me/playlists$")] == [["0"], ["50"]]
    assert foreign["id"] in fake.playlist_track_ids(rock["id"])


def test_sort_liked_with_a_saved_genre_model(fake, spotify_env, tmp_path):
    from recsys.schema import STATS
    from recsys.genres.tabular import GenreClassifier, tabular_features

    rng = np.random.default_rng(0)
    n = 120  # synthetic training rows (not Spotify content): danceability separates the two genres
    y = np.array(["pop", "rock"] * (n // 2))
    train = pd.DataFrame({s: rng.uniform(0.1, 0.9, n) for s in STATS})
    train["key"], train["mode"], train["loudness"] = rng.integers(0, 12, n), rng.integers(0, 2, n), -8.0
    train["tempo"], train["duration_ms"] = 120.0, 200000.0
    train["danceability"] = np.where(y == "pop", 0.85, 0.25) + rng.normal(0, 0.03, n)
    clf = GenreClassifier(n_estimators=30, smote=False, min_child_samples=5).fit(tabular_features(train), y)
    clf.save(tmp_path / "model")

    tracks = [make_track(i) for i in range(40)]
    fake.add_tracks(tracks)
    for i, t in enumerate(tracks):
        fake.features[t["id"]]["danceability"] = 0.85 if i % 2 == 0 else 0.25
    fake.save_tracks(tracks)
    write_user_token(Path(spotify_env["RECSYS_CONFIG_DIR"]), fake)
    res = run("spotify", "sort-liked", "--model", str(tmp_path / "model"), "--genres", "pop,rock",
              "--save-predictions", str(tmp_path / "p.csv"), "--no-progress")
    assert "'recsys: pop': create; 20 predicted" in res.output and "dry run" in res.output
    preds = pd.read_csv(tmp_path / "p.csv")
    assert (preds["predicted_genre"] == ["pop", "rock"] * 20).all()
    run("spotify", "sort-liked", "--model", str(tmp_path / "model"), "--genres", "pop", "--apply",
        "--no-progress")
    assert fake.playlist_track_ids(_playlist(fake, "recsys: pop")["id"]) == [t["id"] for t in tracks[::2]]
    assert [p["name"] for p in fake.user_playlists()] == ["recsys: pop"]


def test_sort_liked_without_stats_says_what_is_missing(fake, spotify_env, tmp_path):
    tracks = [make_track(i) for i in range(5)]
    fake.add_tracks(tracks)
    fake.save_tracks(tracks)
    fake.audio_features_forbidden = True
    write_user_token(Path(spotify_env["RECSYS_CONFIG_DIR"]), fake)
    (tmp_path / "model").mkdir()
    res = run("spotify", "sort-liked", "--model", str(tmp_path / "model"), "--no-progress")
    assert "5 liked song(s) have no audio statistics" in res.output
    assert "no genre to make playlists for" in res.output
    res = run("spotify", "sort-liked", "--no-progress", ok=False)
    assert res.exit_code == 2 and "exactly one of --model" in res.output


def test_login_authorization_code_flow_against_fake(fake, spotify_env, monkeypatch):
    monkeypatch.setenv("RECSYS_SPOTIFY_OPEN_BROWSER", "0")
    monkeypatch.setenv("RECSYS_SPOTIFY_REDIRECT_URI", "http://127.0.0.1:8765/callback")
    res = CliRunner().invoke(main, ["spotify", "login"], input="http://127.0.0.1:8765/callback?code=abc\n",
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"authorised as Spotify user {USER_ID}" in res.output
    assert fake.base + "/authorize?" in res.output  # the prompt shows the configured accounts URL
    (tok,) = fake.calls("POST", r"^/api/token$")
    assert tok.body["grant_type"] == "authorization_code" and tok.body["code"] == "abc"
    cache = Path(spotify_env["RECSYS_CONFIG_DIR"]) / "spotify-user-token.json"
    assert cache.exists() and oct(cache.stat().st_mode & 0o777) == "0o600"
    assert CLIENT_SECRET not in res.output
