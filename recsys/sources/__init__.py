"""Candidate sources behind one interface (``recsys.sources.base.Source``), one module each.

| name | module | needs histories | reaches cold tracks |
|---|---|---|---|
| itemknn, rp3beta, sequence | itemknn.py | yes | no |
| vsknn | vsknn.py | yes | no |
| als | als.py | yes | no |
| rules | assoc.py | yes | no |
| ease | ease.py | yes | no |
| content | content.py | no | yes |
| artist, album, cluster | groups.py | no | yes |
| popular | groups.py | yes | no |

Add a source: one module with a ``Source`` subclass (and its ``Config`` dataclass, a ``SourceConfig``
with its blend weight, candidate budget and own settings), then one line in ``SOURCES``.
"""
from __future__ import annotations

from ..errors import InputError
from ..recommend import RecommendConfig
from .als import ALSSource
from .assoc import RulesSource
from .base import (
    Content,
    Context,
    Interactions,
    Ranked,
    Recommender,
    Source,
    SourceConfig,
    SourceData,
    make_context,
    source_settings,
)
from .content import ContentSource
from .ease import EASESource
from .groups import AlbumSource, ArtistSource, ClusterSource, PopularSource
from .itemknn import ItemKNNSource, RP3BetaSource, SequenceSource
from .vsknn import VSKNNSource

SOURCES: dict[str, type[Source]] = {s.name: s for s in (
    RulesSource, ContentSource, ClusterSource, ArtistSource, AlbumSource,
    ItemKNNSource, RP3BetaSource, SequenceSource, VSKNNSource, EASESource, ALSSource, PopularSource)}

#: the sources of the fallback blend by default (a weight in their own settings)
BLEND_SOURCES = tuple(name for name, cls in SOURCES.items() if cls.Config().weight)


def check_sources(config: RecommendConfig) -> None:
    """Every ``config.sources`` entry names a source and holds valid settings (else one InputError)."""
    if not isinstance(config.sources, dict):
        raise InputError(f"recommend.sources must be a table of source settings, got {config.sources!r}")
    for name in config.sources:
        if name not in SOURCES:
            raise InputError(f"recommend.sources: unknown source {name!r} (choose from {', '.join(SOURCES)})")
        source_settings(SOURCES[name], config)


def make_source(name: str, config: RecommendConfig | None = None) -> Source:
    """A new, unfitted source by name."""
    cls = SOURCES.get(name)
    if cls is None:
        raise InputError(f"unknown candidate source {name!r} (choose from {', '.join(SOURCES)})")
    return cls(config)


__all__ = [
    "BLEND_SOURCES",
    "SOURCES",
    "SourceConfig",
    "check_sources",
    "Content",
    "Context",
    "Interactions",
    "Ranked",
    "Recommender",
    "Source",
    "SourceData",
    "make_context",
    "make_source",
]
