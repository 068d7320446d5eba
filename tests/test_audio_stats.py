"""Statistics estimated from audio, checked on synthetic signals with known properties."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys.testing.audio import SR, chord_progression, click_track
from recsys.audio import frontend as F
from recsys.audio.load import load_excerpt
from recsys.audio.stats import ESTIMATED, estimate_key, integrated_loudness
from recsys.schema import STATS
from recsys.blocks import SkipFile, get_extractor

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"


def _stats(y: np.ndarray) -> dict:
    return get_extractor("audiostats").extract(y, SR, path=Path("synthetic.wav"))


@pytest.mark.parametrize("bpm", [90, 120, 150])
def test_click_track_tempo(bpm):
    assert abs(_stats(click_track(bpm, seconds=20.0))["tempo"] - bpm) < 2.0


@pytest.mark.parametrize("root,major", [(0, True), (2, True), (9, False)])
def test_chord_progression_key_and_mode(root, major):
    out = _stats(chord_progression(root, major=major, seconds=16.0))
    assert (out["key"], out["mode"]) == (root, 1 if major else 0)
    assert out["audiostats__key_confidence"] > 0.6


def test_louder_reads_louder_by_the_gain():
    y = chord_progression(0, seconds=8.0)
    quiet, loud = _stats(y)["loudness"], _stats(np.clip(y * 2.0, -1, 1))["loudness"]
    assert abs((loud - quiet) - 6.02) < 0.3  # +6 dB gain -> +6 LU
    assert _stats(y * 2.0)["energy"] > _stats(y * 0.25)["energy"]


def test_statistics_stay_in_the_catalogue_ranges_even_far_above_full_scale():
    from recsys.catalog import STAT_RANGES

    out = _stats(chord_progression(0, seconds=4.0) * 100.0)  # float files may exceed +-1
    assert out["audiostats__lufs"] > 10.0
    for k in ESTIMATED:
        lo, hi = STAT_RANGES[k]
        assert lo <= out[k] <= hi, k


def test_bs1770_reference_tone():
    t = np.arange(10 * SR) / SR
    # ITU-R BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS (mono mix, K-weighting ~0 dB there)
    assert abs(integrated_loudness(np.sin(2 * np.pi * 997 * t), sr=SR) - (-3.01)) < 0.4
    assert integrated_loudness(np.zeros(SR), sr=SR) == -70.0


def test_columns_follow_the_catalogue_names_and_ranges():
    out = _stats(chord_progression(0, seconds=8.0))
    assert set(ESTIMATED) <= set(STATS)
    assert set(ESTIMATED) == {k for k in out if not k.startswith("audiostats__")}
    for k in ("danceability", "energy", "speechiness", "acousticness", "valence"):
        assert 0.0 <= out[k] <= 1.0
    assert out["duration_ms"] == pytest.approx(8000.0, abs=1)


def test_flat_chroma_has_no_key_and_silence_is_skipped():
    assert estimate_key(chroma=np.ones((12, 50))) == (-1, 0, 0.0)
    with pytest.raises(SkipFile, match="silent"):
        _stats(np.zeros(5 * SR, np.float32))


def test_speech_reads_more_speech_like_than_music():
    """Real clips shipped in data/audio: read speech vs. full-band music."""
    def stats(name):
        y, sr = load_excerpt(DATA / name, sr=SR)
        return get_extractor("audiostats").extract(y, sr, path=DATA / name)

    speech = [stats(n)["speechiness"]
              for n in ("198-209-0000.ogg", "3436-172162-0000.ogg", "5703-47212-0000.ogg")]
    music = [stats(n)["speechiness"]
             for n in ("Kevin_MacLeod_-_Vibe_Ace.ogg", "Karissa_Hobbs_-_Lets_Go_Fishin.ogg",
                       "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg")]
    assert min(speech) > max(music)
    whale = stats("glacier-bay-humpback.ogg")
    assert np.isfinite([whale[k] for k in ESTIMATED]).all()


def test_spectral_and_audiostats_share_one_analysis():
    y = click_track(120, seconds=5.0)
    get_extractor("spectral").extract(y, SR, path=Path("a.wav"))
    first = F._LAST[3]
    get_extractor("audiostats").extract(y, SR, path=Path("a.wav"))
    assert F._LAST[3] is first  # the statistics reused the spectral block's STFT
