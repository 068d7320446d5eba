"""Genre taxonomy (13 parents) and the tabular genre classifier."""
from __future__ import annotations

from .taxonomy import PARENT_GENRES, Taxonomy

__all__ = ["PARENT_GENRES", "Taxonomy", "GenreClassifier", "tabular_features"]


def __getattr__(name: str):
    # The classifier pulls in LightGBM, torch and scikit-learn: load it only when asked for.
    if name in ("GenreClassifier", "tabular_features"):
        from . import tabular

        return getattr(tabular, name)
    raise AttributeError(f"module 'recsys.genres' has no attribute {name!r}")
