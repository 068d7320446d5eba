"""Per-file feature blocks computed from audio, and the registry that names them.

A block extractor turns one decoded excerpt into a flat record (column -> number or string).
The batch stage ``pipelines/extract_features.py`` decodes each file once, runs every requested
block on it, caches each record by (content hash, block, settings), and writes one Parquet per
block. A block may also need the whole corpus afterwards (lyric topics fit NMF over all
transcripts): that is :meth:`BlockExtractor.finalize`.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .errors import InputError


class SkipFile(Exception):
    """Raised by an extractor when a file has no meaningful value for its block (with a reason)."""


@runtime_checkable
class BlockExtractor(Protocol):
    """What the extraction pipeline needs from a feature block."""

    name: str

    def settings(self) -> dict[str, Any]:
        """Everything that changes the output (model name, sample rate, ...): part of the cache key."""

    def extract(self, y: np.ndarray, sr: int, *, path: Path) -> dict[str, Any]:
        """Features of one mono float32 excerpt ``y`` at ``sr`` Hz. Raise :class:`SkipFile` to skip."""

    def finalize(self, table: pd.DataFrame) -> pd.DataFrame:
        """Corpus-level step over all records of this block (identity for most blocks)."""


#: block name -> "module:Class". Constructors take keyword options (from --set block.key=value / TOML).
EXTRACTORS: dict[str, str] = {
    "spectral": "recsys.audio.frontend:SpectralBlock",
    "audiostats": "recsys.audio.stats:AudioStatsBlock",
    "cnn": "recsys.audio.cnn:CNNBlock",
    "stems": "recsys.audio.separation:StemsBlock",
    "lyrics": "recsys.lyrics:LyricsBlock",
}


def get_extractor(name: str, **options: Any) -> BlockExtractor:
    """Instantiate the extractor registered under ``name`` with its options."""
    if name not in EXTRACTORS:
        raise InputError(f"unknown feature block {name!r} (choose from {', '.join(EXTRACTORS)})")
    module, _, cls = EXTRACTORS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(**options)
