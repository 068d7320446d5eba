"""Benchmark: Spotify import and playlist planning through spotipy against the local fake Web API.

Measures recsys + spotipy + HTTP overhead on 127.0.0.1 (no real network latency, so these are
upper bounds on throughput; the real API adds ~100-300 ms a request and rate limits).

    python scripts/bench_spotify.py [--tracks 5000] [--liked 2000] [--match-files 500] [--match-catalog 10000]

The match step writes ``--match-files`` short tagged FLAC files (mutagen) whose titles and artists
are perturbed (case, accents, a version suffix) and matches them against a ``--match-catalog``-track
catalogue: tag reading + matching per file, and matching alone.
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
    ap.add_argument("--match-files", type=int, default=500)
    ap.add_argument("--match-catalog", type=int, default=10000)
    args = ap.parse_args()
    bench_match(args.match_files, args.match_catalog)
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


def bench_match(n_files: int, n_catalog: int) -> None:
    """Tag reading + matching of a folder of tagged files against a catalogue (no network)."""
    import mutagen
    import numpy as np
    import soundfile as sf

    from recsys.spotify.match import FileTags, Matcher, match_folder

    rng = np.random.default_rng(0)
    words = [f"word{i}" for i in range(4000)]
    names = [" ".join(rng.choice(words, 3)).title() for _ in range(n_catalog)]
    artists = [f"Artïst {i % 3000}" for i in range(n_catalog)]
    cat = pd.DataFrame({"track_id": [f"t{i:08d}" for i in range(n_catalog)], "track_name": names,
                        "track_artist": artists, "duration_ms": 1000.0})
    music = Path(tempfile.mkdtemp()) / "music"
    music.mkdir()
    pick = rng.choice(n_catalog, size=min(n_files, n_catalog), replace=False)
    y = (0.1 * np.sin(np.arange(8000) / 5.0)).astype(np.float32)
    for j, i in enumerate(pick):
        path = music / f"{j:05d}.flac"
        sf.write(path, y, 8000, format="FLAC")
        f = mutagen.File(path, easy=True)
        f["title"] = names[i].upper() + (" - Remastered 2011" if j % 3 == 0 else "")
        f["artist"] = artists[i].replace("ï", "i")
        f.save()
    t0 = time.perf_counter()
    res = match_folder(cat, music)
    dt = time.perf_counter() - t0
    right = int((res.matches["track_id"] == [f"t{pick[int(Path(f).stem)]:08d}"
                                             for f in res.matches["file"]]).sum())
    m = Matcher(cat)
    t0 = time.perf_counter()
    for i in pick:
        m.match(FileTags("x.flac", title=names[i].upper(), artist=artists[i], duration_s=1.0))
    dm = time.perf_counter() - t0
    print(f"match: {len(pick)} tagged files vs {n_catalog:,} tracks: {len(res.matches)} matched "
          f"({right} right), {dt:.2f} s = {1000 * dt / len(pick):.2f} ms/file with tag reading, "
          f"{1000 * dm / len(pick):.2f} ms/file matching alone")


if __name__ == "__main__":
    main()
