"""Feature blocks: one module per block, and the registry every other part derives from.

Each module of this package that defines ``SPEC`` (a :class:`BlockSpec`) is a block. The CLI help,
the default blocks of ``features extract``, extraction, the engine's block list and the embedding
all read this registry, so adding a block means adding one module here.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import InputError
from .align import (available_blocks, build_audio_block, extend_catalog, feature_columns,
                    read_feature_block)
from .base import Block, BlockExtractor, BlockSpec, SkipFile
from .registry import (audio_names, check_names, default_names, describe, extractor_version, get_extractor,
                       names, specs)
from .tabular import build_tabular, tabular_stats

__all__ = ["Block", "BlockExtractor", "BlockSpec", "SkipFile", "specs", "names", "audio_names",
           "default_names", "get_extractor", "build_block", "describe", "check_names", "extractor_version",
           "available_blocks", "build_audio_block", "extend_catalog", "feature_columns", "read_feature_block",
           "build_tabular", "tabular_stats"]


def build_block(name: str, catalog: pd.DataFrame, *, features_dir: str | Path | None = None) -> Block:
    """Align an audio block from the features dir to the catalogue rows."""
    check_names([name], source="audio")
    if features_dir is None:
        raise InputError(f"block {name!r} needs --features DIR with {name}.parquet")
    return build_audio_block(name, read_feature_block(features_dir, name), catalog["track_id"])
