"""Block ``spectral``: summarised shared-STFT front-end features of each file (columns ``spectral__*``)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..audio.frontend import MIN_SECONDS, FrontendConfig, analyse, prepare, spectral_features
from ..config import options_to_config
from .base import BlockSpec, SkipFile


class SpectralBlock:
    """Extractor of the ``spectral`` block: MFCC, chroma, tonnetz, centroid, flux, tempo ... summarised."""

    name = "spectral"

    def __init__(self, **options: Any) -> None:
        self.config: FrontendConfig = options_to_config(FrontendConfig, options, where="spectral")

    def settings(self) -> dict[str, Any]:
        """Front-end settings (cache key)."""
        return dataclasses.asdict(self.config)

    def extract(self, y: np.ndarray, sr: int, *, path: Path) -> dict[str, Any]:
        """Summarised features of one excerpt; too-short excerpts are skipped."""
        y = prepare(y, sr, self.config.sr)
        if len(y) < MIN_SECONDS * self.config.sr:
            raise SkipFile(f"too short for spectral features "
                           f"({len(y) / self.config.sr:.2f} s < {MIN_SECONDS} s)")
        feats = spectral_features(analyse(y, self.config.sr, self.config))
        return {f"spectral__{k}": v for k, v in feats.items()}

    def finalize(self, table: pd.DataFrame) -> pd.DataFrame:
        """No corpus-level step."""
        return table


SPEC = BlockSpec(name="spectral", source="audio", version=1, order=10, default=True,
                 columns="spectral__* (MFCC, mel bands, chroma, tonnetz, centroid, flatness, flux, tempo)",
                 help="summarised front-end features", extractor=lambda: SpectralBlock)
