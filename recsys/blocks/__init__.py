"""Feature blocks: one module per block, and the registry every other part derives from.

Each module of this package that defines ``SPEC`` (a :class:`BlockSpec`) is a block. The CLI help,
the default blocks of ``features extract``, extraction, the engine's block list and the embedding
all read this registry, so adding a block means adding one module here.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from .align import available_blocks, build_audio_block, extend_catalog, feature_columns, read_feature_block
from .base import Block, BlockExtractor, BlockSpec, SkipFile
from .tabular import build_tabular, tabular_stats

__all__ = ["Block", "BlockExtractor", "BlockSpec", "SkipFile", "specs", "names", "audio_names", "default_names",
           "get_extractor", "build_block", "describe", "available_blocks", "build_audio_block", "extend_catalog",
           "feature_columns", "read_feature_block", "build_tabular", "tabular_stats"]


@functools.lru_cache(maxsize=1)
def specs() -> dict[str, BlockSpec]:
    """Every block declared in this package, by name, in their declared order."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, BlockSpec):
            found.append(spec)
    return {s.name: s for s in sorted(found, key=lambda s: (s.order, s.name))}


def names() -> tuple[str, ...]:
    """All block names (catalogue and audio)."""
    return tuple(specs())


def audio_names() -> tuple[str, ...]:
    """Blocks extracted from audio files (one ``<name>.parquet`` each in a features dir)."""
    return tuple(n for n, s in specs().items() if s.source == "audio")


def default_names() -> tuple[str, ...]:
    """Audio blocks ``recsys features extract`` computes when ``--blocks`` is not given."""
    return tuple(n for n, s in specs().items() if s.source == "audio" and s.default)


def describe() -> str:
    """One line per block for CLI help texts."""
    return "; ".join(f"{s.name}: {s.help}" for s in specs().values())


def check_names(requested: list[str] | tuple[str, ...], *, source: str | None = None) -> list[str]:
    """Validate block names (one error naming all unknown ones and the known choices)."""
    known = [n for n, s in specs().items() if source is None or s.source == source]
    unknown = [b for b in requested if b not in known]
    if unknown:
        raise InputError(f"unknown block(s) {', '.join(unknown)} (choose from {', '.join(known)})")
    return list(requested)


def get_extractor(name: str, **options: Any) -> BlockExtractor:
    """Instantiate the extractor of audio block ``name`` with its options (``--set name.key=value``)."""
    check_names([name], source="audio")
    return specs()[name].extractor()(**options)


def extractor_version(name: str) -> int:
    """The declared version of a block (part of its cache key: bumping it recomputes cached records)."""
    spec = specs().get(name)
    return spec.version if spec is not None else 0


def build_block(name: str, catalog: pd.DataFrame, *, features_dir: str | Path | None = None) -> Block:
    """Align an audio block from the features dir to the catalogue rows."""
    check_names([name], source="audio")
    if features_dir is None:
        raise InputError(f"block {name!r} needs --features DIR with {name}.parquet")
    return build_audio_block(name, read_feature_block(features_dir, name), catalog["track_id"])
