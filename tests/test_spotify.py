"""spotipy driven against a local fake Web API: paging, skips, faults, auth, resume, redaction."""
from __future__ import annotations

import base64
import json
import logging
import math
import time

import pandas as pd
import pytest

from recsys.testing.spotify import CLIENT_ID, CLIENT_SECRET, FakeSpotify, make_track, write_user_token
from recsys.catalog import load_catalog
from recsys.schema import STATS
from recsys.errors import ExternalServiceError, InputError, SchemaError
from recsys.spotify.client import Credentials, SpotifyClient, SpotifyConfig, redact
from recsys.spotify.importer import FEATURE_STATS, Importer, fill_stats, read_stats, track_row
from recsys.spotify.labels import parse_playlist_spec, playlist_id


def _config(fake: FakeSpotify, tmp_path, **kw) -> SpotifyConfig:
    base = dict(api_url=fake.api_url, auth_url=fake.auth_url, config_dir=str(tmp_path / "cfg"),
                backoff_factor=0.01, retries=3, requests_timeout=5.0)
    base.update(kw)
    return SpotifyConfig.from_env({}, **base)


def _app(fake, tmp_path, **kw) -> SpotifyClient:
    return SpotifyClient.connect(_config(fake, tmp_path, **kw), auth="app",
                                 creds=Credentials(CLIENT_ID, CLIENT_SECRET))


def _user(fake, tmp_path, **kw) -> SpotifyClient:
    cfg = _config(fake, tmp_path, **kw)
    write_user_token(cfg.directory, fake)
    return SpotifyClient.connect(cfg, auth="user", creds=Credentials(CLIENT_ID, CLIENT_SECRET))


def _tracks(n, start=0):
    return [make_track(i) for i in range(start, start + n)]


# ---- references and labels ---------------------------------------------------------------------
def test_playlist_references_and_labels():
    pid = "37i9dQZF1DXcBWIGoYBM5M"
    assert playlist_id(f"https://open.spotify.com/playlist/{pid}?si=abc123") == pid
    assert playlist_id(f"spotify:playlist:{pid}") == pid
    assert playlist_id(pid) == pid
    spec = parse_playlist_spec(f"https://open.spotify.com/playlist/{pid}?si=abc=rock")
    assert (spec.playlist_id, spec.genre) == (pid, "rock")
    assert parse_playlist_spec(f"https://open.spotify.com/playlist/{pid}?si=abc").genre is None
    assert parse_playlist_spec(f"{pid}=deep house").genre == "deep house"
    with pytest.raises(InputError, match="maps to none"):
        parse_playlist_spec(f"{pid}=notagenre")
    with pytest.raises(InputError):
        playlist_id("https://example.com/not/a/playlist")


def test_track_row_shapes_and_skips():
    t = make_track(3)
    assert track_row({"item": t})[0]["track_id"] == t["id"]
    assert track_row({"track": t})[0]["track_id"] == t["id"]  # pre-2026 shape
    assert track_row(None) == (None, "null")
    assert track_row({"item": None}) == (None, "null")
    assert track_row({"item": make_track(1, local=True), "is_local": True}) == (None, "local")
    assert track_row({"item": make_track(2, playable=False)}) == (None, "unavailable")
    assert track_row({"item": {**t, "id": None}}) == (None, "unavailable")
    assert track_row({"item": {**t, "type": "episode"}}) == (None, "not_track")
    assert track_row("garbage") == (None, "malformed")
    assert track_row({"item": ["x"]}) == (None, "malformed")
    row, _ = track_row({"item": {**t, "duration_ms": "abc", "artists": "nope", "album": None,
                                 "popularity": None}})
    assert math.isnan(row["duration_ms"]) and row["track_artist"] is None and row["track_album_name"] is None


# ---- import across pages and faults ----------------------------------------------------------------
def test_import_follows_pages_batches_and_skips(fake, tmp_path):
    tracks = _tracks(260)
    fake.add_tracks(tracks)
    items = tracks[:230] + [None, make_track(900, local=True), make_track(901, playable=False),
                            {"raw": {"added_at": None, "is_local": False, "item": None}},
                            {"raw": "not an object"},
                            {"raw": {"added_at": None, "item": {"id": "ep1", "type": "episode"}}}]
    # an item with missing fields: completed by a batched GET /tracks
    broken = {k: v for k, v in tracks[240].items() if k not in ("album", "artists", "duration_ms")}
    items.append(broken)
    fake.add_playlist("plA", "Big list", items)
    fake.set_artist_genres(tracks[1]["artists"][0]["id"], ["album rock", "classic rock"])
    client = _app(fake, tmp_path)
    df, rep = Importer(client, checkpoint=tmp_path / "ck").run([parse_playlist_spec("plA")])

    assert rep.rows == 231 and df["track_id"].is_unique
    assert set(df["track_id"]) == {t["id"] for t in tracks[:230]} | {tracks[240]["id"]}
    assert dict(rep.skipped) == {"null": 2, "local": 1, "unavailable": 1, "malformed": 1, "not_track": 1}
    pages = fake.calls("GET", r"/playlists/plA/items$")
    assert [(r.query["offset"][0], r.query["limit"][0]) for r in pages] == [("0", "100"), ("100", "100"),
                                                                            ("200", "100")]
    # completion lookup asked only for the incomplete track, and the row is whole now
    lookups = fake.calls("GET", r"^/v1/tracks")
    assert len(lookups) == 1 and lookups[0].query["ids"] == [tracks[240]["id"]]
    fixed = df.set_index("track_id").loc[tracks[240]["id"]]
    assert fixed["track_album_name"] == tracks[240]["album"]["name"] and fixed["duration_ms"] == 180240
    # artists batched 50 at a time, audio features 100 at a time
    art = fake.calls("GET", r"^/v1/artists")
    assert art and all(len(r.query["ids"][0].split(",")) <= 50 for r in art)
    feats = fake.calls("GET", r"^/v1/audio-features")
    assert [len(r.query["ids"][0].split(",")) for r in feats] == [100, 100, 31]
    # artist genres -> parent label where the playlist carried none
    rocky = df[df["track_artist_ids"] == tracks[1]["artists"][0]["id"]]
    assert set(rocky["artist_parent_genre"]) == {"rock"} and set(rocky["label_source"]) == {"artist"}
    assert rep.audio_features == "used" and rep.missing_stats == 0
    assert not (tmp_path / "ck").exists()  # checkpoint removed after success
    cat = load_catalog(df)
    assert len(cat) == 231 and cat["n_missing_stats"].sum() == 0


def test_429_retry_after_is_honoured(fake, tmp_path):
    fake.add_tracks(_tracks(150))
    fake.add_playlist("plB", "B", _tracks(150))
    fake.fail("GET", r"/playlists/plB/items", 429, headers={"Retry-After": "1"})
    df, rep = Importer(_app(fake, tmp_path)).run([parse_playlist_spec("plB")])
    assert rep.rows == 150
    first = fake.calls("GET", r"/playlists/plB/items")[:2]
    assert first[0].query["offset"] == first[1].query["offset"] == ["0"]
    assert first[1].time - first[0].time >= 0.95  # waited for Retry-After


def test_retry_after_beyond_cap_fails_fast(fake, tmp_path):
    fake.add_playlist("plC", "C", _tracks(3))
    fake.fail("GET", r"/playlists/plC/items", 429, headers={"Retry-After": "3600"})
    t0 = time.time()
    with pytest.raises(ExternalServiceError, match="Retry-After 3600"):
        Importer(_app(fake, tmp_path, max_retry_after=5)).run([parse_playlist_spec("plC")])
    assert time.time() - t0 < 5


def test_5xx_retried_with_backoff_then_capped(fake, tmp_path):
    fake.add_tracks(_tracks(5))
    fake.add_playlist("plD", "D", _tracks(5))
    fake.fail("GET", r"/playlists/plD/items", 500, times=2)
    fake.fail("GET", r"/playlists/plD/items", 503)
    df, rep = Importer(_app(fake, tmp_path)).run([parse_playlist_spec("plD")])
    assert rep.rows == 5 and len(fake.calls("GET", r"/playlists/plD/items")) == 4
    fake.fail("GET", r"/playlists/plD$", 502, times=10)
    fake.requests.clear()
    with pytest.raises(ExternalServiceError, match=r"answered 502 \(gave up after 3 retries"):
        Importer(_app(fake, tmp_path)).run([parse_playlist_spec("plD")])
    assert len(fake.calls("GET", r"/playlists/plD$")) == 1 + 3  # first try + 3 retries (retries=3)


def test_post_not_retried_on_5xx_but_token_endpoint_is(fake, tmp_path):
    fake.fail("POST", r"^/api/token$", 500)  # the token endpoint is safe to retry
    client = _user(fake, tmp_path)
    fake.expire_token("user-token-1")
    assert client.current_user_id() == "testuser"  # 401 -> refresh (500, retried) -> retry
    assert len(fake.calls("POST", r"^/api/token$")) == 2
    fake.add_playlist("mine", "Mine", [], owner="testuser")
    fake.add_tracks(_tracks(3))
    fake.fail("POST", r"/playlists/mine/items", 500)  # adding items is not: it may have been applied
    with pytest.raises(ExternalServiceError, match="answered 500"):
        client.call("add", client.sp.playlist_add_items, "mine",
                    [f"spotify:track:{t['id']}" for t in _tracks(3)])
    assert len(fake.calls("POST", r"/playlists/mine/items")) == 1
    client.call("add", client.sp.playlist_add_items, "mine", [f"spotify:track:{t['id']}" for t in _tracks(3)])
    assert fake.playlist_track_ids("mine") == [t["id"] for t in _tracks(3)]


def test_every_request_has_a_timeout(fake, tmp_path):
    fake.add_playlist("plE", "E", _tracks(2))
    client = _app(fake, tmp_path, requests_timeout=0.3)
    assert client.auth_manager.requests_timeout == 0.3 and client.sp.requests_timeout == 0.3
    fake.fail("GET", r"/playlists/plE$", 200, delay=1.5, body={"id": "plE", "name": "late"})
    with pytest.raises(ExternalServiceError, match="did not answer within 0.3 s"):
        Importer(client).run([parse_playlist_spec("plE")])


def test_partial_import_resumes_from_checkpoint(fake, tmp_path):
    tracks = _tracks(320)
    fake.add_tracks(tracks)
    fake.add_playlist("plF", "F", tracks)
    ck = tmp_path / "ck"
    # pages 0 and 100 succeed, then the page at offset 200 keeps failing: the run stops
    imp = Importer(_app(fake, tmp_path), checkpoint=ck)
    real = imp.client.sp.playlist_items

    def dies_at_200(pid, **kw):
        if kw["offset"] == 200:
            raise ConnectionResetError("killed")  # like a crash: nothing catches it
        return real(pid, **kw)

    imp.client.sp.playlist_items = dies_at_200
    with pytest.raises(ConnectionResetError):
        imp.run([parse_playlist_spec("plF=rock")])
    state = json.loads((ck / "state.json").read_text())
    assert state["sources"]["playlist:plF"]["pages"] == [0, 100]
    fake.requests.clear()
    df, rep = Importer(_app(fake, tmp_path), checkpoint=ck).run([parse_playlist_spec("plF=rock")])
    offsets = [r.query["offset"][0] for r in fake.calls("GET", r"/playlists/plF/items")]
    assert offsets == ["200", "300"]  # only what was missing
    assert rep.resumed_pages == 2 and rep.rows == 320 and set(df["track_id"]) == {t["id"] for t in tracks}
    assert any("resumed" in n for n in rep.notes) and set(df["playlist_genre"]) == {"rock"}
    assert not ck.exists()
    # a checkpoint for a different request is discarded, not mixed in
    imp = Importer(_app(fake, tmp_path), checkpoint=ck)
    imp.client.sp.playlist_items = dies_at_200
    with pytest.raises(ConnectionResetError):
        imp.run([parse_playlist_spec("plF=rock")])
    df, rep = Importer(_app(fake, tmp_path), checkpoint=ck).run([parse_playlist_spec("plF=pop")])
    assert rep.resumed_pages == 0 and set(df["playlist_genre"]) == {"pop"}


def test_malformed_answers_do_not_crash(fake, tmp_path):
    fake.add_playlist("plG", "G", _tracks(3))
    fake.fail("GET", r"/playlists/plG/items", 200, body="<html>not json</html>")
    with pytest.raises(ExternalServiceError, match="malformed page"):
        Importer(_app(fake, tmp_path)).run([parse_playlist_spec("plG")])
    # missing playlist: skipped and reported, other playlists still imported
    fake.add_tracks(_tracks(3))
    df, rep = Importer(_app(fake, tmp_path)).run([parse_playlist_spec("nosuch"), parse_playlist_spec("plG")])
    assert rep.rows == 3 and rep.sources[0]["status"] == "skipped (404)"
    assert any("nosuch" in n for n in rep.notes)


# ---- statistics ------------------------------------------------------------------------------------
def test_audio_features_403_reported_once_and_stats_file_fallback(fake, tmp_path):
    tracks = _tracks(230)
    fake.add_tracks(tracks)
    fake.add_playlist("p1", "One", tracks[:120])
    fake.add_playlist("p2", "Two", tracks[100:])
    fake.audio_features_forbidden = True
    client = _app(fake, tmp_path)
    df, rep = Importer(client).run([parse_playlist_spec("p1=pop"), parse_playlist_spec("p2=rock")])
    assert len(fake.calls("GET", r"audio-features")) == 1  # asked once, then stopped
    assert rep.audio_features == "forbidden" and sum("audio-features" in n for n in rep.notes) == 1
    assert df[list(FEATURE_STATS)].isna().all().all() and df["duration_ms"].notna().all()
    assert rep.missing_stats == 230
    bare = load_catalog(df)  # statistics are optional: the catalogue loads without them
    assert len(bare) == 230 and bare["danceability"].isna().all()
    # a user-supplied table (e.g. audiostats.parquet keyed by file names) fills them in
    stats = pd.DataFrame({"file": [f"/music/{t['id']}.ogg" for t in tracks[:200]],
                          "track_id": [None] * 200, "ok": [True] * 200,
                          **{s: [0.5 if s not in ("key", "loudness", "tempo", "mode") else 1.0] * 200
                             for s in STATS}})
    path = tmp_path / "audiostats.parquet"
    stats.to_parquet(path)
    filled, n = fill_stats(df, read_stats(path))
    assert n == 200 and filled["danceability"].notna().sum() == len(filled[filled.track_id.isin(
        [t["id"] for t in tracks[:200]])])
    cat = load_catalog(filled)
    assert set(cat.loc[cat.n_missing_stats > 0, "track_id"]) == {t["id"] for t in tracks[200:]}
    assert set(cat["parent_genre"].dropna()) == {"pop", "rock"}


# ---- auth --------------------------------------------------------------------------------------------
def test_client_credentials_flow_uses_configured_token_url(fake, tmp_path):
    fake.add_playlist("pa", "A", _tracks(1))
    fake.add_tracks(_tracks(1))
    Importer(_app(fake, tmp_path)).run([parse_playlist_spec("pa")])
    tok = fake.calls("POST", r"^/api/token$")
    assert len(tok) == 1 and tok[0].body["grant_type"] == "client_credentials"
    assert (tok[0].authorization
            == "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode())
    assert all(r.authorization.startswith("Bearer tok-") for r in fake.calls("GET"))


def test_401_expired_token_is_refreshed_once(fake, tmp_path):
    tracks = _tracks(60)
    fake.add_tracks(tracks)
    fake.save_tracks(tracks)
    client = _user(fake, tmp_path)
    fake.expire_token("user-token-1")  # the cache still believes it valid
    df, rep = Importer(client).run(liked=True)
    assert rep.rows == 60
    first = fake.calls("GET", r"/me/tracks")[0]
    assert first.authorization == "Bearer user-token-1"
    refresh = fake.calls("POST", r"^/api/token$")
    assert [r.body["grant_type"] for r in refresh] == ["refresh_token"]
    assert refresh[0].body["refresh_token"] == "refresh-initial"
    cached = json.loads(client.config.user_token_path.read_text())
    assert cached["access_token"] != "user-token-1" and cached["refresh_token"] == "refresh-initial"
    assert [r.query["limit"][0] for r in fake.calls("GET", r"/me/tracks")] == ["50", "50", "50"]


def test_401_on_app_token_gets_a_new_client_credentials_token(fake, tmp_path):
    tracks = _tracks(150)
    fake.add_tracks(tracks)
    fake.add_playlist("pe", "E", tracks)
    imp = Importer(_app(fake, tmp_path))
    real = imp.client.sp.playlist_items

    done = []

    def expire_after_first_page(pid, **kw):
        if kw["offset"] == 100 and not done:
            done.append(1)
            for t in list(fake.tokens):
                fake.expire_token(t)
        return real(pid, **kw)

    imp.client.sp.playlist_items = expire_after_first_page
    df, rep = imp.run([parse_playlist_spec("pe")])
    assert rep.rows == 150
    grants = [r.body["grant_type"] for r in fake.calls("POST", r"^/api/token$")]
    assert grants == ["client_credentials", "client_credentials"]
    statuses = [r.query.get("offset") for r in fake.calls("GET", r"/playlists/pe/items")]
    assert statuses == [["0"], ["100"], ["100"]]  # the 401'd page was asked again


def test_expired_cached_token_refreshed_before_calling(fake, tmp_path):
    fake.add_tracks(_tracks(2))
    fake.save_tracks(_tracks(2))
    cfg = _config(fake, tmp_path)
    write_user_token(cfg.directory, fake, ttl=-10)
    client = SpotifyClient.connect(cfg, auth="user", creds=Credentials(CLIENT_ID, CLIENT_SECRET))
    df, rep = Importer(client).run(liked=True)
    assert rep.rows == 2
    assert not any(r.authorization == "Bearer user-token-1" for r in fake.calls("GET"))


def test_liked_needs_user_auth(fake, tmp_path):
    with pytest.raises(InputError, match="login"):
        Importer(_app(fake, tmp_path)).run(liked=True)


def test_credentials_from_dotenv_and_missing(tmp_path):
    (tmp_path / ".env").write_text("RECSYS_SPOTIFY_CLIENT_ID=abc\n"
                                   f"RECSYS_SPOTIFY_CLIENT_SECRET={CLIENT_SECRET}\n")
    creds = Credentials.load(env={}, dotenv=tmp_path / ".env")
    assert creds.client_id == "abc" and CLIENT_SECRET not in repr(creds) and CLIENT_SECRET not in str(creds)
    assert Credentials.load(env={"SPOTIPY_CLIENT_ID": "env"}, dotenv=tmp_path / ".env").client_id == "env"
    with pytest.raises(InputError, match="client id"):
        Credentials.load(env={}, dotenv=None)


def test_secrets_never_logged_even_at_debug(fake, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    fake.add_tracks(_tracks(3))
    fake.save_tracks(_tracks(3))
    fake.add_playlist("pz", "Z", _tracks(3))
    Importer(_app(fake, tmp_path)).run([parse_playlist_spec("pz")])
    client = _user(fake, tmp_path)
    fake.expire_token("user-token-1")
    Importer(client).run(liked=True)  # 401 -> refresh: spotipy logs the refresh request at debug
    text = caplog.text + capsys.readouterr().err
    assert "Sending POST request" in text  # the debug records were really captured
    issued = [t for t in fake.tokens if t.startswith("tok-")]
    secrets = [CLIENT_SECRET, base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode(),
               "user-token-1", "refresh-initial", *issued]
    for s in secrets:
        assert s not in text, f"secret leaked into logs: {s[:6]}..."
    assert "Bearer ***" in text
    assert redact(f"'Authorization': 'Basic {secrets[1]}'") == "'Authorization': 'Basic ***'"


def test_pkce_user_flow_refreshes_without_a_secret(fake, tmp_path):
    fake.add_tracks(_tracks(4))
    fake.save_tracks(_tracks(4))
    cfg = _config(fake, tmp_path)
    write_user_token(cfg.directory, fake, ttl=-10)
    client = SpotifyClient.connect(cfg, auth="user", creds=Credentials(CLIENT_ID, None))
    assert type(client.auth_manager).__name__ == "SpotifyPKCE"
    df, rep = Importer(client).run(liked=True)
    (tok,) = fake.calls("POST", r"^/api/token$")
    assert tok.body == {"refresh_token": "refresh-initial", "grant_type": "refresh_token",
                        "client_id": CLIENT_ID}
    assert tok.authorization is None and rep.rows == 4


def test_forbidden_playlist_items_skipped_and_progress_shown(fake, tmp_path, capsys):
    fake.add_tracks(_tracks(120))
    fake.add_playlist("ok1", "Fine", _tracks(120))
    fake.add_playlist("no1", "Editorial", _tracks(3))
    fake.fail("GET", r"/playlists/no1/items", 403)
    df, rep = Importer(_app(fake, tmp_path), progress=True).run(
        [parse_playlist_spec("no1"), parse_playlist_spec("ok1")])
    assert rep.rows == 120 and [s["status"] for s in rep.sources] == ["skipped (403)", "ok"]
    err = capsys.readouterr().err
    assert "playlist Fine" in err and "audio features" in err and "item/s" in err  # tqdm bars


def test_read_stats_rejects_unusable_tables(tmp_path):
    (tmp_path / "a.csv").write_text("name,danceability\nx,0.5\n")
    with pytest.raises(SchemaError, match="track_id"):
        read_stats(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("track_id,foo\nx,1\n")
    with pytest.raises(SchemaError, match="none of the 12 statistics"):
        read_stats(tmp_path / "b.csv")
    with pytest.raises(InputError, match="not found"):
        read_stats(tmp_path / "missing.csv")


def test_config_endpoints_from_toml_and_env(tmp_path):
    from recsys.config import load_section

    (tmp_path / "r.toml").write_text('[spotify]\napi_url = "http://127.0.0.1:1/v1"\nretries = 2\n')
    base = load_section(tmp_path / "r.toml", "spotify", SpotifyConfig)
    cfg = SpotifyConfig.from_env({"RECSYS_SPOTIFY_AUTH_URL": "http://127.0.0.1:2/acc/"}, base=base)
    assert cfg.api_prefix == "http://127.0.0.1:1/v1/" and cfg.retries == 2
    assert cfg.token_url == "http://127.0.0.1:2/acc/api/token"
    assert cfg.authorize_url == "http://127.0.0.1:2/acc/authorize"
    cfg = SpotifyConfig.from_env({"RECSYS_SPOTIFY_API_URL": "http://127.0.0.1:3/v1/",
                                  "RECSYS_SPOTIFY_AUTH_URL": "http://127.0.0.1:2/acc"}, base=base)
    assert cfg.api_prefix == "http://127.0.0.1:3/v1/"  # the environment wins over the file
    with pytest.raises(InputError, match="RECSYS_SPOTIFY_TIMEOUT"):
        SpotifyConfig.from_env({"RECSYS_SPOTIFY_TIMEOUT": "soon"})
    client = SpotifyClient.connect(cfg, auth="app", creds=Credentials(CLIENT_ID, CLIENT_SECRET))
    assert client.sp.prefix == "http://127.0.0.1:3/v1/"
    assert client.auth_manager.OAUTH_TOKEN_URL == "http://127.0.0.1:2/acc/api/token"
    from spotipy.oauth2 import SpotifyClientCredentials

    # the class attribute is untouched
    assert SpotifyClientCredentials.OAUTH_TOKEN_URL.startswith("https://accounts.spotify.com")
