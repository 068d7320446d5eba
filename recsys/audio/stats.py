"""Spotify-style audio statistics estimated from the signal itself.

Many users can no longer get audio-features from Spotify, so a track with only an audio file still
needs a tabular block. Tempo, loudness, key and mode are measurements with a definition (BS.1770
loudness, Krumhansl-Schmuckler key profiles); energy, danceability, acousticness, speechiness and
valence are transparent heuristics in [0, 1] built from front-end descriptors that play the same
roles. They are *not* calibrated to Spotify's values (no audio of Spotify rows may be used here);
docs/audio.md says what each one measures. Instrumentalness and liveness have no estimate.
"""
from __future__ import annotations


import numpy as np

from .frontend import Analysis, tempogram_profile

#: Krumhansl-Kessler key profiles (probe-tone ratings), index 0 = tonic.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

#: Statistics (names from recsys.catalog.STATS) this module estimates.
ESTIMATED = ("danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
             "valence", "tempo", "duration_ms")


# ----------------------------------------------------------------------------- loudness

def _biquad(kind: str, *, fc: float, Q: float, gain_db: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ-cookbook biquad, as used to build the BS.1770 K-weighting at any sample rate."""
    A = 10 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * fc / sr
    alpha = np.sin(w0) / (2.0 * Q)
    cw = np.cos(w0)
    if kind == "high_shelf":
        sa = 2 * np.sqrt(A) * alpha
        b = [A * ((A + 1) + (A - 1) * cw + sa), -2 * A * ((A - 1) + (A + 1) * cw),
             A * ((A + 1) + (A - 1) * cw - sa)]
        a = [(A + 1) - (A - 1) * cw + sa, 2 * ((A - 1) - (A + 1) * cw), (A + 1) - (A - 1) * cw - sa]
    elif kind == "high_pass":
        b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    else:  # pragma: no cover - internal
        raise ValueError(kind)
    return np.asarray(b) / a[0], np.asarray(a) / a[0]


def k_weight(y: np.ndarray, *, sr: int) -> np.ndarray:
    """ITU-R BS.1770 K-weighting: a +4 dB shelf above ~1.7 kHz (head) then a 38 Hz high-pass (RLB)."""
    from scipy.signal import lfilter

    b1, a1 = _biquad("high_shelf", fc=1681.974450955533, Q=0.7071752369554196, gain_db=3.999843853973347,
                     sr=sr)
    b2, a2 = _biquad("high_pass", fc=38.13547087602444, Q=0.5003270373238773, gain_db=0.0, sr=sr)
    return lfilter(b2, a2, lfilter(b1, a1, y.astype(np.float64)))


def integrated_loudness(y: np.ndarray, *, sr: int, block_s: float = 0.4, overlap: float = 0.75) -> float:
    """Approximate integrated loudness in LUFS (BS.1770-4 mono: K-weighting, 400 ms blocks, gating).

    Mono only (channels are already mixed), so stereo files read ~0-3 LU lower than a stereo meter.
    Returns -70.0 for signals entirely below the absolute gate.
    """
    z = k_weight(y, sr=sr) ** 2
    n = int(block_s * sr)
    step = max(1, int(n * (1 - overlap)))
    if len(z) < n:
        blocks = np.array([z.mean()]) if len(z) else np.array([0.0])
    else:
        c = np.concatenate([[0.0], np.cumsum(z)])
        starts = np.arange(0, len(z) - n + 1, step)
        blocks = (c[starts + n] - c[starts]) / n
    lk = -0.691 + 10 * np.log10(np.maximum(blocks, 1e-12))
    gated = blocks[lk > -70.0]
    if gated.size == 0:
        return -70.0
    rel = -0.691 + 10 * np.log10(gated.mean()) - 10.0
    gated = blocks[(lk > -70.0) & (lk > rel)]
    return float(-0.691 + 10 * np.log10(gated.mean()))


# ----------------------------------------------------------------------------- key

def estimate_key(*, chroma: np.ndarray) -> tuple[int, int, float]:
    """Key (0=C..11=B), mode (1 major, 0 minor) and confidence (Pearson r) by Krumhansl-Schmuckler.

    The time-averaged chroma is correlated with the 24 rotated major/minor profiles; the best wins.
    Returns ``(-1, 0, 0.0)`` when the chroma is flat (no tonal content), Spotify's "no key".
    """
    profile = np.asarray(chroma, dtype=np.float64)
    if profile.ndim == 2:
        profile = profile.mean(axis=1)
    if not np.all(np.isfinite(profile)) or profile.std() < 1e-9:
        return -1, 0, 0.0
    best = (-2.0, -1, 0)
    for mode, ref in ((1, MAJOR_PROFILE), (0, MINOR_PROFILE)):
        for k in range(12):
            r = float(np.corrcoef(profile, np.roll(ref, k))[0, 1])
            if r > best[0]:
                best = (r, k, mode)
    return best[1], best[2], best[0]


# ----------------------------------------------------------------------------- descriptors

def _clip01(x: float) -> float:
    return float(np.clip(x, 0.0, 1.0)) if np.isfinite(x) else 0.0


def descriptors(a: Analysis) -> dict[str, float]:
    """Intermediate measurements the heuristic statistics are built from (also exported)."""
    sr = a.sr
    tempo, beats = a.tempo_beats
    bpm, prof = tempogram_profile(onset_envelope=a.onset, sr=sr, hop_length=a.config.hop_length)
    pulse = 0.0
    if tempo > 0:
        near = np.abs(np.log2(bpm / tempo)) < 0.03
        pulse = float(prof[near].max()) if near.any() else 0.0
    P = a.S ** 2
    total = P.sum() + 1e-12
    freqs = np.linspace(0, sr / 2, P.shape[0])
    frame_db = 20 * np.log10(np.maximum(a.rms, 1e-6))
    loud_frames = frame_db[frame_db > frame_db.max() - 60]
    active = frame_db > np.percentile(frame_db, 95) - 25
    env_mod = _modulation_ratio(a.rms, sr=sr, hop_length=a.config.hop_length)
    onset_rate = 0.0
    if len(a.onset) > 2:
        import librosa

        onsets = librosa.onset.onset_detect(onset_envelope=a.onset, sr=sr, hop_length=a.config.hop_length)
        onset_rate = len(onsets) / max(a.duration, 1e-9)
    ch = a.chroma
    # share of the strongest pitch class per frame: 1/12 for noise, 1 for a single pitch
    tonal = float(np.mean(ch.max(axis=0) / np.maximum(ch.sum(axis=0), 1e-9))) if ch.size else 0.0
    return {
        "pulse_clarity": pulse,
        "beat_strength": float(a.onset[beats].mean() / max(a.onset.mean(), 1e-9)) if len(beats) else 0.0,
        "onset_rate": onset_rate,
        "bass_ratio": float(P[freqs < 150].sum() / total),
        "high_ratio": float(P[freqs > 4000].sum() / total),
        "centroid_hz": float(np.average(a.centroid, weights=a.rms + 1e-12)),
        "flatness": float(np.median(a.flatness)),
        "dynamic_range_db": float(np.percentile(loud_frames, 95) - np.percentile(loud_frames, 10)),
        "pause_ratio": float(1.0 - active.mean()),
        "syllabic_modulation": env_mod,
        "tonalness": tonal,
        "zcr_cv": float(a.zcr.std() / max(a.zcr.mean(), 1e-9)),
    }


def _modulation_ratio(envelope: np.ndarray, *, sr: int, hop_length: int) -> float:
    """Share of the energy envelope's modulation spectrum between 2.5 and 8 Hz (syllable rate)."""
    e = np.asarray(envelope, dtype=np.float64)
    if len(e) < 16 or e.std() < 1e-12:
        return 0.0
    e = (e - e.mean()) / e.std()
    spec = np.abs(np.fft.rfft(e * np.hanning(len(e)))) ** 2
    f = np.fft.rfftfreq(len(e), d=hop_length / sr)
    band = spec[(f >= 2.5) & (f <= 8.0)].sum()
    return float(band / max(spec[(f >= 0.25) & (f <= 20.0)].sum(), 1e-12))


def estimate_stats(a: Analysis, *, duration_s: float | None = None) -> dict[str, float]:
    """Spotify-named statistics (see :data:`ESTIMATED`) plus their ingredients (``audiostats__*``)."""
    d = descriptors(a)
    lufs = integrated_loudness(a.y, sr=a.sr)
    tempo, _ = a.tempo_beats
    key, mode, key_conf = estimate_key(chroma=a.chroma_cqt if "C" in a._cache else a.chroma)
    loud01 = _clip01((lufs + 35.0) / 30.0)                      # -35 LUFS -> 0, -5 LUFS -> 1
    bright01 = _clip01((d["centroid_hz"] - 500.0) / 3000.0)
    activity01 = _clip01(d["onset_rate"] / 6.0)
    noise01 = _clip01(d["flatness"] * 10.0)
    tempo_pref = float(np.exp(-0.5 * (np.log2(max(tempo, 1.0) / 118.0) / 0.45) ** 2)) if tempo > 0 else 0.0
    energy = 0.45 * loud01 + 0.2 * bright01 + 0.2 * activity01 + 0.15 * noise01
    danceability = (0.5 * _clip01((d["pulse_clarity"] - 0.3) / 0.5)
                    + 0.2 * _clip01((d["beat_strength"] - 1.0) / 3.0) + 0.3 * tempo_pref)
    acousticness = (0.35 * _clip01((d["dynamic_range_db"] - 8.0) / 25.0)
                    + 0.25 * (1 - _clip01(d["bass_ratio"] / 0.35))
                    + 0.20 * (1 - _clip01(d["high_ratio"] / 0.08)) + 0.20 * (1 - noise01))
    speechiness = (0.3 * _clip01((d["zcr_cv"] - 0.5) / 0.4) + 0.3 * _clip01(d["pause_ratio"] / 0.2)
                   + 0.2 * _clip01((0.4 - d["tonalness"]) / 0.15)
                   + 0.2 * _clip01((d["dynamic_range_db"] - 15.0) / 20.0))
    valence = (0.35 * float(mode) + 0.25 * _clip01((tempo - 60.0) / 100.0) + 0.2 * bright01
               + 0.2 * danceability)
    out = {
        # clamped to the catalogue's valid range: a float file far above full scale must not make the
        # whole catalogue invalid (audiostats__lufs keeps the measured value)
        "danceability": danceability, "energy": energy, "key": float(key),
        "loudness": float(np.clip(lufs, -80.0, 10.0)),
        "mode": float(mode),
        "speechiness": speechiness, "acousticness": acousticness, "valence": valence, "tempo": tempo,
        "duration_ms": min(1000.0 * (duration_s if duration_s is not None else a.duration), 3.6e7),
    }
    out.update({"audiostats__lufs": lufs, "audiostats__rms_db": a.rms_db,
                "audiostats__key_confidence": key_conf})
    out.update({f"audiostats__{k}": v for k, v in d.items()})
    return out
