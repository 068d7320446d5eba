"""Feature blocks: one module per block, and the registry every other part derives from.

Each module of this package that defines ``SPEC`` (a :class:`BlockSpec`) is a block. The CLI help,
the default blocks of ``features extract``, extraction, the engine's block list and the embedding
all read this registry, so adding a block means adding one module here.
"""
from __future__ import annotations

from .align import (AudioBlock, available_blocks, build_audio_block, extend_catalog, feature_columns,
                    read_feature_block)
from .base import Block, BlockExtractor, BlockSpec, SkipFile
from .registry import (audio_names, check_names, default_names, describe, extractor_version, get_extractor,
                       names, specs)
from .tabular import TabularBlock, build_tabular, tabular_stats

__all__ = ["Block", "BlockExtractor", "BlockSpec", "SkipFile", "specs", "names", "audio_names",
           "default_names", "get_extractor", "make_block", "AudioBlock", "TabularBlock", "describe",
           "check_names", "extractor_version",
           "available_blocks", "build_audio_block", "extend_catalog", "feature_columns", "read_feature_block",
           "build_tabular", "tabular_stats"]


def make_block(name: str, **tabular) -> TabularBlock | AudioBlock:
    """An unfitted block by name: ``fit_transform(catalog, features_dir=...)`` then ``transform(catalog)``
    for tracks added later. ``tabular`` options configure the catalogue block (genre model, weights)."""
    check_names([name])
    return TabularBlock(**tabular) if specs()[name].source == "catalog" else AudioBlock(name)
