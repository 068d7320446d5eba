"""recsys: a hybrid tabular + audio music recommender.

``import recsys`` is cheap; heavy pieces (torch, faiss) load when first used.
"""
from __future__ import annotations

from .catalog import load_catalog
from .schema import STATS
from .errors import RecsysError
from .genres.taxonomy import PARENT_GENRES, Taxonomy

__version__ = "0.1.0"
__all__ = ["STATS", "PARENT_GENRES", "Taxonomy", "RecsysError", "load_catalog", "Engine", "Recommendation"]


def __getattr__(name: str):
    if name == "Engine":
        from .engine import Engine

        return Engine
    if name == "Recommendation":
        from .recommend import Recommendation

        return Recommendation
    raise AttributeError(f"module 'recsys' has no attribute {name!r}")
