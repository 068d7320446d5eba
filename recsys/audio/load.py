"""Decode audio files to mono float32 at a target rate; pick excerpts and cut chunks.

wav/flac/ogg/mp3 go through libsndfile (soundfile); m4a/aac and anything libsndfile cannot read
go through ffmpeg when it is installed.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DependencyError, InputError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".opus")
_FFMPEG_ONLY = (".m4a", ".aac", ".mp4", ".opus", ".wma")


def resample(y: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    """``y`` as float32 at ``sr`` Hz (soxr); a no-op but for the dtype when the rates match."""
    y = np.asarray(y, dtype=np.float32)
    if orig_sr == sr:
        return y
    import soxr

    return soxr.resample(y, orig_sr, sr).astype(np.float32, copy=False)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence C libraries' notes on file descriptor 2 (mpg123's "Note: Trying to resync...")
    while decoding."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to protect
        yield
        return
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


#: libsndfile messages that mean "this is not audio" rather than "this audio is damaged".
_NOT_AUDIO = ("not a regular file", "format not recognised", "unknown format", "unspecified internal error")


def _decode_error(path: Path, exc: Exception) -> InputError:
    """One line a user understands from a libsndfile error."""
    text = str(exc)
    if any(s in text.lower() for s in _NOT_AUDIO):
        return InputError(f"{path}: not an audio file (libsndfile reads wav, flac, ogg, mp3, aiff; "
                          "install ffmpeg for m4a/aac/opus)")
    detail = text.split(": ", 1)[-1].strip().rstrip(".") if ": " in text else text
    return InputError(f"{path}: cannot decode audio ({detail}: truncated or damaged?)")


def _decode_ffmpeg(path: Path, sr: int) -> np.ndarray:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise DependencyError(f"{path}: {path.suffix} needs ffmpeg, which is not installed "
                              "(e.g. apt-get install ffmpeg)")
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(sr), "-"]
    proc = subprocess.run(cmd, capture_output=True, timeout=600)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(f"{path}: ffmpeg cannot decode it ({msg[-1] if msg else 'unknown error'})")
    return np.frombuffer(proc.stdout, dtype=np.float32).copy()


def load_audio(path: str | Path, *, sr: int = 22050, mono: bool = True,
               offset: float = 0.0, duration: float | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` to float32 in [-1, 1] at ``sr`` Hz; mono mixes channels by mean.

    ``offset``/``duration`` (seconds) read only a window, so a 30-s excerpt of a long file is cheap.
    Returns ``(y, sr)``; ``y`` is 1-D when mono, else (channels, samples).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes)")
    if path.suffix.lower() in _FFMPEG_ONLY:
        return load_audio_ffmpeg_window(path, sr, offset, duration)
    import soundfile as sf

    try:
        with quiet_stderr(), sf.SoundFile(str(path)) as f:
            native = f.samplerate
            if offset:
                f.seek(min(int(offset * native), f.frames))
            frames = -1 if duration is None else int(duration * native)
            data = f.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        if shutil.which("ffmpeg"):
            return load_audio_ffmpeg_window(path, sr, offset, duration)
        raise _decode_error(path, exc) from None
    y = data.T  # (channels, samples)
    if mono:
        y = y.mean(axis=0)
        y = resample(y, native, sr)
    else:
        y = np.stack([resample(c, native, sr) for c in y])
    if not np.all(np.isfinite(y)):
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    return np.ascontiguousarray(y, dtype=np.float32), sr


def load_audio_ffmpeg_window(path: Path, sr: int, offset: float,
                             duration: float | None) -> tuple[np.ndarray, int]:
    """Decode through ffmpeg (mono, ``sr``) and keep the ``offset``/``duration`` window."""
    y = _decode_ffmpeg(path, sr)
    start = int(offset * sr)
    y = y[start:start + int(duration * sr)] if duration is not None else y[start:]
    return y, sr


def audio_duration(path: str | Path) -> float:
    """Length in seconds without decoding (libsndfile header); falls back to a full decode."""
    import soundfile as sf

    try:
        with quiet_stderr():
            info = sf.info(str(path))
        return info.frames / float(info.samplerate)
    except Exception:
        y, sr = load_audio(path, sr=22050)
        return len(y) / sr


def excerpt_window(total_seconds: float, *, seconds: float | None = 30.0,
                   position: str = "middle") -> tuple[float, float | None]:
    """``(offset, duration)`` of the excerpt: the middle ``seconds`` by default, or ``start``.

    ``seconds=None`` means the whole file.
    """
    if seconds is None or total_seconds <= seconds:
        return 0.0, None
    if position == "start":
        return 0.0, seconds
    if position == "middle":
        return (total_seconds - seconds) / 2.0, seconds
    raise InputError(f"excerpt position must be 'middle' or 'start', got {position!r}")


def load_excerpt(path: str | Path, *, sr: int = 22050, seconds: float | None = 30.0,
                 position: str = "middle") -> tuple[np.ndarray, int]:
    """Decode only the excerpt (middle 30 s by default) of ``path`` as mono float32."""
    path = Path(path)
    if path.suffix.lower() in _FFMPEG_ONLY:
        y, sr = load_audio(path, sr=sr)
        off, dur = excerpt_window(len(y) / sr, seconds=seconds, position=position)
        a = int(off * sr)
        return (y[a:a + int(dur * sr)] if dur else y), sr
    off, dur = excerpt_window(audio_duration(path), seconds=seconds, position=position)
    return load_audio(path, sr=sr, offset=off, duration=dur)


def chunk(y: np.ndarray, sr: int, *, seconds: float = 3.0, hop_seconds: float | None = None) -> np.ndarray:
    """Cut ``y`` into ``(n_chunks, seconds*sr)`` frames with a hop (default: no overlap).

    A signal shorter than one chunk gives zero chunks; callers decide what that means.
    """
    size = int(round(seconds * sr))
    hop = int(round((hop_seconds or seconds) * sr))
    if size <= 0 or hop <= 0:
        raise InputError("chunk length and hop must be positive")
    if len(y) < size:
        return np.zeros((0, size), dtype=np.float32)
    n = 1 + (len(y) - size) // hop
    idx = np.arange(size)[None, :] + hop * np.arange(n)[:, None]
    return y[idx].astype(np.float32, copy=False)
