"""Synthetic labelled audio for the audio tests: seeded, small, with known properties.

Three "genres" differ in rhythm and timbre (so a chunk classifier can learn them):
- ``thump``: low sine kicks on every beat at 100-130 bpm + a sustained bass note;
- ``tick``:  bright noise hi-hats on sixteenths at 140-170 bpm + a sawtooth lead;
- ``drone``: no percussion; a slowly swelling mid-register chord with vibrato.
Each song randomises tempo, pitch, gain, phase and adds background noise.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

SR = 22050
GENRES = ("thump", "tick", "drone")
#: A harder set: same instruments and overlapping tempi, classes differ only in rhythmic pattern
#: (positions of hits within a bar, in sixteenths), so timbre statistics alone cannot separate them.
RHYTHM_GENRES = ("straight", "swing", "syncopated")
_PATTERNS = {"straight": [0, 2, 4, 6, 8, 10, 12, 14], "swing": [0, 2.67, 4, 6.67, 8, 10.67, 12, 14.67],
             "syncopated": [0, 3, 6, 8, 10, 11, 14, 15]}


def click_track(bpm: float, *, seconds: float = 30.0, sr: int = SR, seed: int = 0,
                level: float = 0.5) -> np.ndarray:
    """Short noise clicks every beat."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * sr), np.float32)
    n = 300
    burst = (rng.normal(0, 1, n) * np.hanning(n)).astype(np.float32) * level
    for t in np.arange(0, seconds, 60.0 / bpm):
        i = int(t * sr)
        y[i:i + n] += burst[: len(y[i:i + n])]
    return y


def tone(freq: float, seconds: float, *, sr: int = SR, harmonics: int = 4) -> np.ndarray:
    """Harmonic tone at ``freq`` Hz (partials at 1/k amplitude), so pitch and chroma are known."""
    t = np.arange(int(seconds * sr)) / sr
    return sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, harmonics + 1)).astype(np.float32)


def chord_progression(root: int = 0, *, major: bool = True, seconds: float = 16.0,
                      sr: int = SR) -> np.ndarray:
    """I-IV-V-I triads (root position, octave 4) with harmonic tones; root 0 = C."""
    minor_triad, major_triad = (0, 3, 7), (0, 4, 7)
    degrees = (0, 5, 7, 0)
    seg = seconds / len(degrees)
    out = []
    for d in degrees:
        base = 60 + root + d
        # major key: all major triads; minor key: minor i and iv, major V (harmonic minor)
        shape = major_triad if (major or d == 7) else minor_triad
        notes = [base + i for i in shape]
        y = sum(tone(440.0 * 2 ** ((m - 69) / 12), seg, sr=sr) for m in notes)
        env = np.minimum(1, np.minimum(np.arange(len(y)), len(y) - np.arange(len(y))) / (0.02 * sr))
        out.append(y * env)
    y = np.concatenate(out)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def synth_song(genre: str, *, seconds: float = 8.0, sr: int = SR, seed: int = 0) -> np.ndarray:
    """One seeded song of a synthetic genre (see module docstring)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = np.zeros(n, np.float64)
    offset = rng.uniform(0, 0.3)
    if genre == "thump":
        bpm = rng.uniform(100, 130)
        f0 = rng.uniform(45, 70)
        for b in np.arange(offset, seconds, 60 / bpm):
            i = int(b * sr)
            k = np.arange(min(int(0.15 * sr), n - i)) / sr
            y[i:i + len(k)] += np.sin(2 * np.pi * (f0 + 60 * np.exp(-k * 30)) * k) * np.exp(-k * 20)
        y += 0.2 * np.sin(2 * np.pi * rng.uniform(55, 90) * t)
    elif genre == "tick":
        bpm = rng.uniform(140, 170)
        for b in np.arange(offset, seconds, 15 / bpm):
            i = int(b * sr)
            m = min(int(0.03 * sr), n - i)
            hat = rng.normal(0, 1, m) * np.exp(-np.arange(m) / (0.006 * sr))
            y[i:i + m] += 0.6 * np.diff(np.concatenate([[0], hat]))  # high-passed noise
        f = rng.uniform(600, 1200)
        y += 0.15 * (2 * ((f * t) % 1.0) - 1) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t) ** 2)
    elif genre == "drone":
        root = rng.uniform(180, 320)
        vib = 1 + 0.004 * np.sin(2 * np.pi * rng.uniform(4, 6) * t)
        for ratio in (1.0, 1.25, 1.5):
            phase = 2 * np.pi * np.cumsum(root * ratio * vib) / sr
            y += sum(np.sin(k * phase) / k ** 2 for k in (1, 2, 3))
        y *= 0.4 + 0.6 * np.sin(np.pi * t / seconds) ** 2
    elif genre in _PATTERNS:
        bpm = rng.uniform(95, 135)
        sixteenth = 15.0 / bpm
        kick_f, hat_decay, pad_f = rng.uniform(45, 80), rng.uniform(0.003, 0.012), rng.uniform(150, 400)
        bar = 16 * sixteenth
        for start in np.arange(offset, seconds, bar):
            for pos in _PATTERNS[genre]:
                i = int((start + pos * sixteenth) * sr)
                if i >= n:
                    break
                m = min(int(0.12 * sr), n - i)
                k = np.arange(m) / sr
                if rng.random() < 0.5:   # kick or hat at random: the instrument says nothing about the class
                    y[i:i + m] += np.sin(2 * np.pi * (kick_f + 50 * np.exp(-k * 30)) * k) * np.exp(-k * 25)
                else:
                    hat = rng.normal(0, 1, m) * np.exp(-k / hat_decay)
                    y[i:i + m] += 0.5 * np.diff(np.concatenate([[0], hat]))
        y += 0.1 * np.sin(2 * np.pi * pad_f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.25 * t))
    else:
        raise ValueError(genre)
    y += rng.normal(0, 0.01, n)
    y = y / np.abs(y).max() * rng.uniform(0.3, 0.9)
    return y.astype(np.float32)


def write_labelled_set(root: Path, *, per_genre: int = 6, seconds: float = 8.0, sr: int = SR,
                       seed: int = 0, layout: str = "csv", genres: tuple[str, ...] = GENRES) -> Path:
    """Write ``per_genre`` songs per synthetic genre as wav; returns the labels CSV (layout csv) or root."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for g_i, g in enumerate(genres):
        for j in range(per_genre):
            rel = Path(g) / f"{g}_{j:02d}.wav" if layout == "folders" else Path(f"{g}_{j:02d}.wav")
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, synth_song(g, seconds=seconds, sr=sr, seed=seed * 1000 + g_i * 100 + j), sr)
            rows.append(f"{rel.as_posix()},{g}")
    if layout == "folders":
        return root
    labels = root / "labels.csv"
    labels.write_text("file,genre\n" + "\n".join(rows) + "\n")
    return labels


class SlowBlock:
    """Test-only block: sleeps per file and logs each call, to kill an extraction midway."""

    name = "slow"

    def __init__(self, delay: float | str = 0.2, log: str | None = None) -> None:
        self.delay = float(delay)
        self.log = log

    def settings(self) -> dict[str, Any]:
        """Cache-key settings: only a version (delay and log path do not change the output)."""
        return {"version": 1}  # delay and log path do not change the output

    def extract(self, y: np.ndarray, sr: int, *, path: Path) -> dict[str, Any]:
        """Log the file name, sleep ``delay`` seconds, return the excerpt's RMS."""
        if self.log:
            with open(self.log, "a") as fh:
                fh.write(f"{Path(path).name}\n")
        time.sleep(self.delay)
        return {"slow__rms": float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if len(y) else 0.0}

    def finalize(self, table):
        """Return the table unchanged (no post-processing)."""
        return table


class CrashBlock:
    """Test-only block: kills its own worker process on files named ``crash*`` (like a decoder segfault)."""

    name = "crashy"

    def settings(self) -> dict[str, Any]:
        """No settings: the output never varies."""
        return {}

    def extract(self, y: np.ndarray, sr: int, *, path: Path) -> dict[str, Any]:
        """SIGKILL the current process on ``crash*`` files; otherwise return the sample count."""
        import os
        import signal

        if Path(path).name.startswith("crash"):
            os.kill(os.getpid(), signal.SIGKILL)
        return {"crashy__n": float(len(y))}

    def finalize(self, table):
        """Return the table unchanged (no post-processing)."""
        return table
