"""Genre taxonomy (13 parents) and the tabular genre classifier."""
from .taxonomy import PARENT_GENRES, Taxonomy

__all__ = ["PARENT_GENRES", "Taxonomy"]
