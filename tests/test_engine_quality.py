"""Quality on REAL playlists (playlist = listener, row order = play order): hybrid vs item-kNN."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from recsys.engine import Engine, EngineConfig
from recsys.evaluate import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from make_playlist_histories import playlist_histories  # noqa: E402


def _run(table):
    hist = playlist_histories(table)
    cfg = EngineConfig()
    cfg.genre_probs = False  # speed; the claim does not rest on the genre model
    eng = Engine.build(table, histories=hist, config=cfg, seed=0)
    res, info = evaluate(eng, hist, k=10)
    return res.set_index("method"), info


def test_demo_playlists_hybrid_beats_itemknn_and_hits_cold_tracks(demo_csv):
    res, info = _run(demo_csv)
    assert info["test_users"] > 300 and info["cold_targets"] > 0.5
    assert res.loc["hybrid", "hit@10"] > res.loc["itemknn", "hit@10"]
    assert res.loc["hybrid", "hit@10"] > res.loc["popularity", "hit@10"]
    assert res.loc["hybrid", "cold_hits"] > 0  # tracks never played in training are reached


@pytest.mark.slow
def test_shared_playlists_hybrid_beats_itemknn(shared_data):
    res, info = _run(shared_data / "spotify" / "spotify_songs_dev.csv.gz")
    assert info["test_users"] > 400
    assert res.loc["hybrid", "hit@10"] > res.loc["itemknn", "hit@10"]
    assert res.loc["hybrid", "cold_hits"] > 0
