"""Feature blocks from a fabricated features dir: presence mask, audio-only tracks, ablation, weights."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.blocks import Block, build_audio_block, extend_catalog, tabular_stats
from recsys.schema import STATS
from recsys.embedding import EmbeddingBuilder
from recsys.engine import Engine
from recsys.errors import InputError, SchemaError

from recsys.testing.engine import fast_config, make_catalog


@pytest.fixture()
def features(tmp_path):
    """spectral + audiostats for 20 catalogue tracks (2 failed) and 3 audio-only files."""
    rng = np.random.default_rng(0)
    ids = [f"t{i:04d}" for i in range(20)] + ["song_a", "song_b", "song_c"]
    n = len(ids)
    spectral = pd.DataFrame({"file": [f"/music/{t}.ogg" for t in ids], "track_id": ids,
                             "ok": [True] * n, "reason": [""] * n,
                             "centroid_mean": rng.normal(2000, 300, n), "flux_mean": rng.random(n),
                             "zcr_mean": rng.random(n), "text": ["ignored"] * n})
    spectral.loc[[3, 7], "ok"] = False
    spectral.loc[[3, 7], "reason"] = "decode error"
    spectral.loc[[3, 7], ["centroid_mean", "flux_mean", "zcr_mean"]] = np.nan
    stats = pd.DataFrame({"file": spectral["file"], "track_id": ids, "ok": True, "reason": ""})
    for c in STATS:
        stats[c] = rng.random(n) if c not in ("tempo", "loudness", "key", "duration_ms") else \
            {"tempo": 120.0, "loudness": -8.0, "key": 5.0, "duration_ms": 200000.0}[c]
    spectral.to_parquet(tmp_path / "spectral.parquet", index=False)
    stats.to_parquet(tmp_path / "audiostats.parquet", index=False)
    return tmp_path


def test_audio_block_alignment_and_mask(features):
    table = pd.read_parquet(features / "spectral.parquet")
    ids = pd.Series(["t0003", "t0000", "unknown", "song_b"])
    b = build_audio_block("spectral", table, ids)
    assert b.columns == ["centroid_mean", "flux_mean", "zcr_mean"]  # 'text' and bookkeeping ignored
    assert b.present.tolist() == [False, True, False, True]
    assert np.allclose(b.values[1], table.loc[0, b.columns].to_numpy(dtype=float))


def test_extend_catalog_adds_audio_only_tracks_with_audiostats(features):
    cat = make_catalog(40)
    out, added, _ = extend_catalog(cat, features)
    assert added == 3 and len(out) == 43
    new = out[out["track_id"] == "song_b"].iloc[0]
    stats = pd.read_parquet(features / "audiostats.parquet").set_index("track_id")
    assert new["track_name"] == "song_b"
    assert new["danceability"] == pytest.approx(stats.loc["song_b", "danceability"])
    assert new["source"] == "audio"


def test_files_every_block_failed_on_are_not_tracks(features, tmp_path):
    """A file with no extracted block (0-byte, not audio) has nothing to embed: left out and counted."""
    d = tmp_path / "f2"
    d.mkdir()
    for name in ("spectral", "audiostats"):
        t = pd.read_parquet(features / f"{name}.parquet")
        bad = t.iloc[[0]].copy()
        bad["track_id"], bad["file"], bad["ok"], bad["reason"] = ("broken", "broken.mp3", False,
                                                                  "not an audio file")
        pd.concat([t, bad], ignore_index=True).to_parquet(d / f"{name}.parquet", index=False)
    out, added, left_out = extend_catalog(make_catalog(40), d)
    assert added == 3 and left_out == 1 and "broken" not in set(out["track_id"])


def test_build_with_features_dir(features, tmp_path):
    cat = make_catalog(40)
    eng = Engine.build(cat, features=features, blocks=["tabular", "spectral"], out=tmp_path / "idx",
                       config=fast_config(genre_probs=False))
    assert eng.n_tracks == 43
    assert eng.block_presence == {"tabular": 43, "spectral": 18 + 3}
    layout = {name: s.stop - s.start for name, s in eng.block_slices.items()}
    assert layout == {"tabular": 15, "spectral": 3}
    emb = eng.embeddings
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # failed extraction (ok=False) and tracks without audio: spectral part is zero, tabular carries the vector
    for t in ("t0003", "t0007", "t0030"):
        assert np.all(emb[eng.tracks.row(t), 15:] == 0)
    assert np.any(emb[eng.tracks.row("t0001"), 15:] != 0)
    assert np.any(emb[eng.tracks.row("song_a"), :15] != 0)  # audio-only track got stats from audiostats
    assert eng.similar("song_c", k=3)
    loaded = Engine.load(tmp_path / "idx")
    assert loaded.config.embedding.blocks == ("tabular", "spectral")
    # default blocks: tabular + every block found in the dir
    eng2 = Engine.build(cat, features=features, config=fast_config(genre_probs=False))
    assert list(eng2.block_slices) == ["tabular", "spectral", "audiostats"]


def test_features_without_catalog(features):
    eng = Engine.build(None, features=features, blocks=["spectral"], config=fast_config(genre_probs=False))
    assert eng.n_tracks == 23
    assert np.all(eng.embeddings[eng.tracks.row("t0003")] == 0)  # no block at all: zero vector, still indexed


def test_missing_block_file_is_clear(features):
    with pytest.raises(InputError, match="cnn"):
        Engine.build(make_catalog(40), features=features, blocks=["tabular", "cnn"],
                     config=fast_config(genre_probs=False))
    pd.DataFrame({"file": ["a"], "ok": [True]}).to_parquet(features / "stems.parquet")
    with pytest.raises(SchemaError, match="track_id"):
        Engine.build(make_catalog(40), features=features, blocks=["stems"],
                     config=fast_config(genre_probs=False))


def test_embedding_weights_and_standardisation():
    rng = np.random.default_rng(1)
    a = Block("a", rng.normal(100, 50, (50, 4)), np.ones(50, bool), list("wxyz"))
    b = Block("b", rng.normal(0, 1, (50, 16)), np.r_[np.ones(40, bool), np.zeros(10, bool)],
              [f"c{i}" for i in range(16)])
    emb = EmbeddingBuilder().fit_transform([a, b])
    # equal weights: both blocks carry comparable energy despite 4 vs 16 columns and different scales
    ea = (emb[:40, :4] ** 2).sum(1).mean()
    eb = (emb[:40, 4:] ** 2).sum(1).mean()
    assert 0.5 < ea / eb < 2.0
    assert np.all(emb[40:, 4:] == 0) and np.allclose(np.linalg.norm(emb[40:], axis=1), 1)
    heavy = EmbeddingBuilder(weights={"a": 3.0}).fit_transform([a, b])
    # weight 3 on block a: 9x its energy before L2 normalisation, so its share rises to ~0.9
    assert (heavy[:40, :4] ** 2).sum(1).mean() > 0.75
    restored = EmbeddingBuilder.from_dict(EmbeddingBuilder().fit([a, b]).to_dict())
    assert np.allclose(restored.transform([a, b]), emb)


def test_tabular_stats_key_is_cyclic_and_imputed():
    cat = make_catalog(12)
    cat.loc[0, "key"] = 11
    cat.loc[1, "key"] = 0
    cat.loc[2, "danceability"] = np.nan
    X, cols, med = tabular_stats(cat)
    assert "key_sin" in cols and "key" not in cols
    ks, kc = cols.index("key_sin"), cols.index("key_cos")
    # key 11 and key 0 are neighbours on the circle
    assert np.hypot(X[0, ks] - X[1, ks], X[0, kc] - X[1, kc]) < 0.6
    assert X[2, cols.index("danceability")] == pytest.approx(med["danceability"])
    assert not np.isnan(X).any()


def test_audio_only_default_blocks_with_partial_audiostats(features):
    # The real audiostats block has no instrumentalness/liveness estimate; an unlabelled, audio-only
    # catalogue must still build with the default blocks and genre probabilities switched on.
    stats = pd.read_parquet(features / "audiostats.parquet").drop(columns=["instrumentalness", "liveness"])
    stats.to_parquet(features / "audiostats.parquet", index=False)
    eng = Engine.build(None, features=features, config=fast_config())
    assert eng.n_tracks == 23
    assert list(eng.block_slices) == ["tabular", "spectral", "audiostats"]
    assert eng.genre_model is None
