"""The musicnn port: checkpoint reader, exact pooling shortcut, tags checked against facts or TensorFlow,
and similar-by-sound on the bundled clips (each music clip's nearest neighbour is music)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "audio"
JAZZ = DATA / "Kevin_MacLeod_-_Vibe_Ace.ogg"
STRINGS = DATA / "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg"
MUSIC = {"Kevin_MacLeod_-_Vibe_Ace", "Karissa_Hobbs_-_Lets_Go_Fishin", "sorohanro_-_solo-trumpet-06",
         "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy",
         "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra)"}

pytestmark = pytest.mark.skipif(importlib.util.find_spec("musicnn") is None,
                                reason="musicnn weights not installed (pip install --no-deps musicnn==0.1.0)")


@pytest.fixture(scope="module")
def tagger():
    from recsys.audio.musicnn import Tagger

    return Tagger.load("MSD_musicnn")


def _tags(tagger, path: Path, k: int) -> list[str]:
    from recsys.audio.load import load_excerpt

    y, sr = load_excerpt(path, sr=16000, seconds=15.0)
    return [t for t, _ in tagger.top_tags(tagger.tag(y, sr).probs.mean(0), k)]


def test_checkpoint_reader_reads_every_variable():
    from recsys.audio.musicnn import checkpoint_prefix, read_labels, read_tf_checkpoint

    t = read_tf_checkpoint(checkpoint_prefix("MSD_musicnn"))
    assert len(t) == 150  # 47 model variables x 3 (value + two Adam slots) + global step, beta powers
    assert t["conv2d/kernel"].shape == (7, 38, 1, 204) and t["conv2d_1/kernel"].shape == (7, 67, 1, 204)
    assert t["conv2d_2/kernel"].shape == (128, 1, 1, 51) and t["dense/kernel"].shape == (1506, 200)
    assert np.all(t["batch_normalization_9/moving_variance"] > 0)
    labels = read_labels("MSD_musicnn")
    assert len(labels) == 50 and labels[:3] == ["rock", "pop", "alternative"]
    assert "classical" in read_labels("MTT_musicnn")


def test_pooling_shortcut_equals_plain_relu_bn_max(tagger):
    """Pool-before-BN (max, or min where the BN scale is negative) gives the plain path's numbers."""
    import torch
    import torch.nn.functional as F

    net = tagger.net
    x = torch.from_numpy(np.random.default_rng(0).normal(1, 0.5, (2, 187, 96)).astype(np.float32))
    with torch.inference_mode():
        xi = F.pad(net.input_bn(x.unsqueeze(1)), (0, 0, 3, 3))
        conv, norm = net.timbral[0], net.timbral_bn[0]
        z = conv(xi)
        saved = norm.weight.clone()
        norm.weight[:10] *= -1  # make sure the min branch is exercised
        try:
            plain = norm(F.relu(z)).amax(dim=3)
            fast = net._pool_freq(z, norm)
        finally:
            norm.weight.copy_(saved)
    assert torch.allclose(plain, fast, atol=1e-6)


TF_PYTHON = os.environ.get("RECSYS_TF_PYTHON") or (
    sys.executable if importlib.util.find_spec("tensorflow") else None)


@pytest.mark.slow
@pytest.mark.skipif(TF_PYTHON is None, reason="check against TensorFlow skipped: no tensorflow (set "
                    "RECSYS_TF_PYTHON to a venv's python with tensorflow-cpu); the facts check ran instead")
def test_port_matches_tensorflow_forward_pass():
    """Check: TensorFlow running the checkpoint's own saved graph, max |diff| < 1e-4."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_musicnn_tf.py"), "--tf-python",
                        TF_PYTHON, "--audio-dir", str(DATA)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr[-2000:]


def test_port_tags_match_facts(tagger):
    """Check: facts about the bundled clips (the port did not write them): the jazz clip is tagged jazz,
    the string-orchestra clip instrumental (MSD has no classical tag) and classical/strings in MTT."""
    from recsys.audio.musicnn import Tagger

    assert "jazz" in _tags(tagger, JAZZ, 3)
    assert {"instrumental", "classical"} & set(_tags(tagger, STRINGS, 3))
    assert {"classical", "strings", "violin"} & set(_tags(Tagger.load("MTT_musicnn"), STRINGS, 3))


def test_block_short_silent_and_columns():
    from recsys.blocks import SkipFile, get_extractor

    block = get_extractor("musicnn")
    sr = 22050
    t = np.arange(int(2.0 * sr)) / sr
    feats = block.extract((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, path=Path("tone.wav"))
    assert len([c for c in feats if c.startswith("musicnn__logit_")]) == 50  # 2 s: repeat-padded to 3 s
    assert len([c for c in feats if c.startswith("musicnn__emb_max_")]) == 200
    assert len(feats["musicnn__top_tags"].split(", ")) == 3
    with pytest.raises(SkipFile, match="too short"):
        block.extract(np.ones(sr // 2, np.float32), sr, path=Path("blip.wav"))
    with pytest.raises(SkipFile, match="silent"):
        block.extract(np.zeros(5 * sr, np.float32), sr, path=Path("silence.wav"))
    assert "musicnn" in __import__("recsys.blocks", fromlist=["default_names"]).default_names()


@pytest.fixture(scope="module")
def bundled_features(tmp_path_factory):
    from pipelines.extract_features import ExtractConfig, run

    out = tmp_path_factory.mktemp("musicnn_feats")
    run(DATA, out, ExtractConfig(), progress=False)  # the default blocks, as `features extract` runs them
    return out


def test_music_clips_nearest_neighbour_is_music(bundled_features):
    """Similar by sound, default blocks: no music clip's nearest neighbour is speech, whale or bird."""
    from recsys.engine import Engine
    from recsys.testing.engine import fast_config

    import pandas as pd

    table = pd.read_parquet(bundled_features / "musicnn.parquet")
    assert table["ok"].all(), table[~table["ok"]][["file", "reason"]]
    eng = Engine.build(None, features=bundled_features, config=fast_config(genre_probs=False))
    for track in sorted(MUSIC):
        nearest = eng.similar(track, k=1)[0]
        assert nearest.track_id in MUSIC, f"{track} -> {nearest.track_id}"
        assert any(r.startswith("tags: ") for r in nearest.reasons), nearest.reasons  # reasons name tags
    assert "jazz" in eng.track("Kevin_MacLeod_-_Vibe_Ace")["tags"]
