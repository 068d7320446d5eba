"""What a feature block is: its declaration (:class:`BlockSpec`), extractor protocol and aligned matrix.

A block module in this package declares ``SPEC = BlockSpec(...)``; the registry in
``recsys/blocks/__init__.py`` finds every such module, so adding a block means adding one module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import pandas as pd


class SkipFile(Exception):
    """Raised by an extractor when a file has no meaningful value for its block (with a reason)."""


@runtime_checkable
class BlockExtractor(Protocol):
    """What the extraction pipeline needs from an audio feature block."""

    name: str

    def settings(self) -> dict[str, Any]:
        """Everything that changes the output (model name, sample rate, ...): part of the cache key."""

    def extract(self, y: np.ndarray, sr: int, *, path: Path) -> dict[str, Any]:
        """Features of one mono float32 excerpt ``y`` at ``sr`` Hz. Raise :class:`SkipFile` to skip."""

    def finalize(self, table: pd.DataFrame) -> pd.DataFrame:
        """Corpus-level step over all records of this block (identity for most blocks)."""


@dataclass(frozen=True)
class BlockSpec:
    """One feature block's declaration: the single place its name, columns and version are written.

    ``source`` is ``"catalog"`` (built from the track table by the engine) or ``"audio"`` (extracted
    per file into ``<features>/<name>.parquet``). ``extractor`` is a zero-argument function returning
    the extractor class, so the registry stays importable without torch or librosa.
    """

    name: str
    source: str
    version: int
    columns: str
    help: str
    order: int
    extractor: Callable[[], type] | None = None
    default: bool = False  # extracted by `recsys features extract` when --blocks is not given
    weight: float = 1.0  # default weight in the embedding (EmbeddingConfig.weights overrides it)


@dataclass
class Block:
    """One feature block aligned to the catalogue: ``values`` (n, d) float32, ``present`` (n,) bool;
    ``weights`` (d,) multiplies each column's weight in the embedding (None: all 1)."""

    name: str
    values: np.ndarray
    present: np.ndarray
    columns: list[str] = field(default_factory=list)
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        self.present = np.asarray(self.present, dtype=bool)
        if self.values.ndim != 2 or self.values.shape[0] != self.present.shape[0]:
            raise ValueError(f"block {self.name}: values {self.values.shape} vs present {self.present.shape}")
