"""Benchmark: Spotify import and playlist planning through spotipy against the local fake Web API.

Measures recsys + spotipy + HTTP overhead on 127.0.0.1 (no real network latency, so these are
upper bounds on throughput; the real API adds ~100-300 ms a request and rate limits).

    python scripts/bench_spotify.py [--tracks 5000] [--liked 2000]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd  # noqa: E402

from recsys.testing.spotify import CLIENT_ID, CLIENT_SECRET, FakeSpotify, make_track, write_user_token
from recsys.spotify.client import Credentials, SpotifyClient, SpotifyConfig  # noqa: E402
from recsys.spotify.importer import Importer  # noqa: E402
from recsys.spotify.labels import parse_playlist_spec  # noqa: E402
from recsys.spotify.playlists import PlaylistState, apply_plan, plan_playlists  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracks", type=int, default=5000)
    ap.add_argument("--liked", type=int, default=2000)
    args = ap.parse_args()
    fake = FakeSpotify().start()
    tmp = Path(tempfile.mkdtemp())
    try:
        tracks = [make_track(i) for i in range(args.tracks)]
        fake.add_tracks(tracks)
        fake.add_playlist("bench", "Bench", tracks)
        cfg = SpotifyConfig.from_env({}, api_url=fake.api_url, auth_url=fake.auth_url,
                                     config_dir=str(tmp / "cfg"))
        creds = Credentials(CLIENT_ID, CLIENT_SECRET)
        client = SpotifyClient.connect(cfg, auth="app", creds=creds)
        t0 = time.perf_counter()
        df, rep = Importer(client, checkpoint=tmp / "ck").run([parse_playlist_spec("bench=rock")])
        dt = time.perf_counter() - t0
        n_req = len(fake.requests)
        print(f"import: {rep.rows} rows, {n_req} requests, {dt:.2f} s, {rep.rows / dt:.0f} rows/s "
              f"(pages + {rep.artists} artists + audio features, checkpointed)")

        liked = tracks[: args.liked]
        fake.save_tracks(liked)
        write_user_token(cfg.directory, fake)
        user = SpotifyClient.connect(cfg, auth="user", creds=creds)
        genres = ["pop", "rock", "jazz", "metal"]
        preds = pd.DataFrame({"track_id": [t["id"] for t in liked],
                              "predicted_genre": [genres[i % 4] for i in range(len(liked))]})
        state = PlaylistState(tmp / "state.json")
        fake.requests.clear()
        t0 = time.perf_counter()
        plan = plan_playlists(user, preds, genres, state=state)
        done = apply_plan(user, plan, state=state)
        dt = time.perf_counter() - t0
        print(f"sort-liked apply: {done['created']} playlists, {done['added']} tracks added, "
              f"{len(fake.requests)} requests, {dt:.2f} s")
        fake.requests.clear()
        t0 = time.perf_counter()
        plan = plan_playlists(user, preds, genres, state=state)
        dt = time.perf_counter() - t0
        print(f"sort-liked re-plan (no changes: {plan.changes == 0}): {len(fake.requests)} requests, "
              f"{dt:.2f} s")
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
