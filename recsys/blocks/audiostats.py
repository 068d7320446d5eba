"""Block ``audiostats``: Spotify-style statistics estimated from audio (columns named like ``schema.STATS``).

Audio-only tracks get their 12 statistics from this block, so they join the tabular block too.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..audio.frontend import MIN_SECONDS, FrontendConfig, prepare, shared_analysis
from ..audio.load import audio_duration
from ..audio.stats import estimate_stats
from ..config import options_to_config
from .base import BlockSpec, SkipFile


@dataclass(frozen=True)
class AudioStatsConfig:
    """Front-end settings the statistics are computed with (defaults share the spectral block's STFT)."""

    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 64
    key_chroma: str = "stft"  # "cqt" is slower but resolves low notes better


class AudioStatsBlock:
    """Feature block ``audiostats``: columns named like ``recsys.catalog.STATS`` + ``audiostats__*``.

    A silent excerpt is skipped (no key, tempo or loudness to estimate), reason ``silent``.
    """

    name = "audiostats"

    def __init__(self, **options: Any) -> None:
        self.config: AudioStatsConfig = options_to_config(AudioStatsConfig, options, where="audiostats")

    def settings(self) -> dict[str, Any]:
        """Front-end settings (cache key)."""
        return dataclasses.asdict(self.config)

    def _frontend(self) -> FrontendConfig:
        c = self.config
        return FrontendConfig(sr=c.sr, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels)

    def extract(self, y: np.ndarray, sr: int, *, path: Path) -> dict[str, Any]:
        """The 12 statistics estimated from one excerpt; silent or too-short excerpts are skipped."""
        y = prepare(y, sr, self.config.sr)
        if len(y) < MIN_SECONDS * self.config.sr:
            raise SkipFile(f"too short for statistics ({len(y) / self.config.sr:.2f} s)")
        # the spectral block's analysis of this excerpt when its STFT settings agree, else our own
        a = shared_analysis(y, self.config.sr, self._frontend())
        if a.silent:
            raise SkipFile(f"silent (RMS {a.rms_db:.0f} dBFS): no tempo, key or loudness to estimate")
        if self.config.key_chroma == "cqt":
            a.chroma_cqt  # noqa: B018 - computes and caches the CQT so estimate_key uses it
        try:
            duration = audio_duration(path) if path is not None and Path(path).exists() else None
        except Exception:
            duration = None
        return estimate_stats(a, duration_s=duration)

    def finalize(self, table: pd.DataFrame) -> pd.DataFrame:
        """No corpus-level step."""
        return table


SPEC = BlockSpec(name="audiostats", source="audio", version=1, order=20, default=True,
                 columns="the 12 statistics + audiostats__* (LUFS, key strength, ...)",
                 help="Spotify-style statistics estimated from audio", extractor=lambda: AudioStatsBlock)
