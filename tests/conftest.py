"""Shared fixtures: the bundled demo table and the optional ../shared data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def demo_csv() -> Path:
    return DATA / "spotify_demo.csv.gz"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.exists():
        pytest.skip("../shared/data not present")
    return SHARED


@pytest.fixture
def fake():
    """A fake Spotify Web API on 127.0.0.1 (recsys.testing.spotify), stopped after the test."""
    from recsys.testing.spotify import FakeSpotify

    server = FakeSpotify().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def spotify_env(fake, tmp_path, monkeypatch):
    """Environment pointing recsys at the fake (and a private config dir), cwd without a .env."""
    from recsys.testing.spotify import CLIENT_ID, CLIENT_SECRET

    env = {"RECSYS_SPOTIFY_API_URL": fake.api_url, "RECSYS_SPOTIFY_AUTH_URL": fake.auth_url,
           "RECSYS_CONFIG_DIR": str(tmp_path / "config"), "RECSYS_SPOTIFY_CLIENT_ID": CLIENT_ID,
           "RECSYS_SPOTIFY_CLIENT_SECRET": CLIENT_SECRET, "RECSYS_SPOTIFY_BACKOFF": "0.01",
           "RECSYS_SPOTIFY_RETRIES": "3", "RECSYS_SPOTIFY_TIMEOUT": "5"}
    for k in ("SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET", "SPOTIPY_REDIRECT_URI", "SPOTIFY_CLIENT_ID",
              "SPOTIFY_CLIENT_SECRET", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return env
