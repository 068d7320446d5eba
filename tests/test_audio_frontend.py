"""Decoding (formats, rates, channels, bad files) and the shared-STFT spectral front-end."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from recsys.testing.audio import SR, chord_progression, click_track, synth_song
from recsys.audio import frontend as F
from recsys.audio.load import chunk, load_audio, load_excerpt
from recsys.errors import DependencyError, InputError
from recsys.blocks import SkipFile, get_extractor

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"


@pytest.fixture(scope="module")
def song() -> np.ndarray:
    return synth_song("thump", seconds=6.0, seed=3)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "FLOAT"])
def test_bit_depths_decode_to_the_same_signal(tmp_path, song, subtype):
    path = tmp_path / f"x_{subtype}.wav"
    sf.write(path, song, SR, subtype=subtype)
    y, sr = load_audio(path, sr=SR)
    assert sr == SR and y.dtype == np.float32 and y.ndim == 1 and len(y) == len(song)
    tol = 0.02 if subtype == "PCM_U8" else 1e-3  # 8-bit quantisation step is 1/128
    assert np.max(np.abs(y - song)) < tol


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3", "AIFF"])
def test_containers_decode_through_libsndfile(tmp_path, song, fmt):
    if fmt not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot write {fmt}")
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, song, SR, format=fmt)
    y, sr = load_audio(path, sr=SR)
    assert sr == SR and abs(len(y) - len(song)) < 0.05 * SR
    level = lambda x: 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))  # noqa: E731
    assert abs(level(y) - level(song)) < 1.0  # lossy codecs keep the level


@pytest.mark.parametrize("rate", [8000, 11025, 44100, 96000])
def test_odd_sample_rates_are_resampled(tmp_path, rate):
    y0 = click_track(120, seconds=8.0, sr=rate)
    path = tmp_path / f"r{rate}.flac"
    sf.write(path, y0, rate)
    y, sr = load_audio(path, sr=SR)
    assert sr == SR and abs(len(y) - 8.0 * SR) <= 2
    tempo = F.spectral_features(F.Analysis(y, SR))["tempo"]
    assert abs(tempo - 120) < 3


def test_multichannel_is_mixed_to_mono(tmp_path, song):
    six = np.stack([song * g for g in (1.0, 0.5, 0.0, 0.0, 0.25, 0.25)], axis=1)
    path = tmp_path / "six.wav"
    sf.write(path, six, SR, subtype="FLOAT")
    y, _ = load_audio(path, sr=SR)
    assert y.ndim == 1 and np.allclose(y, song * 2.0 / 6.0, atol=1e-5)
    multi, _ = load_audio(path, sr=SR, mono=False)
    assert multi.shape == (6, len(song))


def test_bad_files_raise_one_clear_input_error(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage" + bytes(range(256)) * 4)
    with pytest.raises(InputError, match="empty"):
        load_audio(empty)
    with pytest.raises(InputError, match="cannot decode|ffmpeg"):
        load_audio(corrupt)
    with pytest.raises(InputError, match="not found"):
        load_audio(tmp_path / "missing.ogg")


@pytest.mark.skipif(shutil.which("ffmpeg") is not None, reason="ffmpeg installed: m4a decodes")
def test_m4a_without_ffmpeg_says_so(tmp_path):
    path = tmp_path / "song.m4a"
    path.write_bytes(b"\x00\x00\x00\x18ftypM4A " + b"\x00" * 64)
    with pytest.raises(DependencyError, match="ffmpeg, which is not installed"):
        load_excerpt(path)


def test_excerpt_is_the_middle_and_chunks_cut_with_hop(tmp_path):
    y0 = np.concatenate([np.zeros(SR * 10), np.ones(SR * 10) * 0.5, np.zeros(SR * 10)]).astype(np.float32)
    path = tmp_path / "steps.wav"
    sf.write(path, y0, SR, subtype="FLOAT")
    y, _ = load_excerpt(path, sr=SR, seconds=10)
    assert len(y) == 10 * SR and np.allclose(y, 0.5)
    c = chunk(y, SR, seconds=3, hop_seconds=1.5)
    assert c.shape == (5, 3 * SR)
    assert chunk(y[: SR], SR, seconds=3).shape == (0, 3 * SR)


def test_real_clips_decode_and_give_finite_features():
    y, sr = load_excerpt(DATA / "Kevin_MacLeod_-_Vibe_Ace.ogg", sr=SR)
    assert len(y) == 30 * SR
    feats = get_extractor("spectral").extract(y, sr, path=DATA / "Kevin_MacLeod_-_Vibe_Ace.ogg")
    vals = np.array([v for k, v in feats.items() if k != "spectral__beat_interval_cv"], dtype=float)
    assert all(k.startswith("spectral__") for k in feats) and np.isfinite(vals).all()
    assert feats["spectral__silent"] == 0.0 and 60 < feats["spectral__tempo"] < 200


def test_one_stft_is_shared_and_matches_the_pure_functions(song):
    cfg = F.FrontendConfig()
    a = F.analyse(song, SR, cfg)
    assert F.analyse(song, SR, cfg) is a  # a second block on the same excerpt reuses the analysis
    S = F.stft_magnitude(song, n_fft=cfg.n_fft, hop_length=cfg.hop_length)
    assert np.allclose(a.S, S)
    M_db = F.log_mel(M=F.mel_power(S=S, sr=SR, n_fft=cfg.n_fft, n_mels=cfg.n_mels))
    assert np.allclose(a.mfcc, F.mfcc(M_db=M_db, n_mfcc=cfg.n_mfcc), atol=1e-3)
    import librosa  # our cheap versions agree with librosa's reference implementations

    ref = librosa.feature.rms(y=song)[0]
    assert np.median(np.abs(a.rms - ref) / ref) < 0.05  # window-corrected spectral RMS ~ time-domain RMS
    assert np.allclose(a.centroid, librosa.feature.spectral_centroid(S=S, sr=SR)[0], rtol=1e-3, atol=1.0)
    zcr = librosa.feature.zero_crossing_rate(song)[0]
    assert np.abs(a.zcr - zcr)[2:-2].max() < 2e-3
    F.spectral_features(a)  # fills the shared cache
    assert {"S", "M", "chroma", "onset"} <= set(a._cache)


def test_expensive_chroma_is_optional():
    y = chord_progression(0, seconds=4.0)
    base = get_extractor("spectral").extract(y, SR, path=Path("x.wav"))
    full = get_extractor("spectral", chroma="stft,cqt,cens").extract(y, SR, path=Path("x.wav"))
    assert not any("chroma_cqt" in k for k in base)
    assert any("chroma_cqt" in k for k in full) and any("chroma_cens" in k for k in full)
    # the C-major chord's pitch classes C, E, G dominate the CQT chroma
    means = np.array([full[f"spectral__chroma_cqt_{i:02d}_mean"] for i in range(12)])
    assert set(np.argsort(means)[-3:]) <= {0, 4, 5, 7, 9, 11, 2}
    with pytest.raises(InputError, match="unknown option"):
        get_extractor("spectral", n_melz=3)


def test_silence_is_flagged_and_too_short_is_skipped():
    block = get_extractor("spectral")
    feats = block.extract(np.zeros(3 * SR, np.float32), SR, path=Path("silence.wav"))
    assert feats["spectral__silent"] == 1.0 and feats["spectral__tempo"] == 0.0
    with pytest.raises(SkipFile, match="too short"):
        block.extract(np.zeros(100, np.float32), SR, path=Path("tiny.wav"))


def test_summarise_names_and_values():
    x = np.vstack([np.arange(11.0), np.ones(11)])
    out = F.summarise(x, prefix="f", percentiles=(10, 50))
    assert out["f_00_mean"] == 5.0 and out["f_00_p50"] == 5.0 and out["f_01_std"] == 0.0
    assert F.summarise(np.arange(3.0), prefix="g", stats=("mean",)) == {"g_mean": 1.0}
