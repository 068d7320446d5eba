"""recsys: a hybrid tabular + audio music recommender.

``import recsys`` is cheap: everything numeric (pandas, torch, faiss) loads when first used, so the
command line can size thread pools before any numeric library starts (``recsys.threads``). Importing
recsys makes idle OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE`` unless set; ``RECSYS_THREADS=off``
leaves the environment alone) and ``Engine.build`` limits BLAS itself, so the API costs what the CLI does.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from . import threads as _threads
from .errors import RecsysError
from .schema import STATS

_threads.passive_waits()  # before any OpenMP runtime loads (they read the environment once)

__version__ = "0.1.0"
__all__ = ["STATS", "PARENT_GENRES", "Taxonomy", "RecsysError", "load_catalog", "Engine", "Recommendation"]

_LAZY = {"Engine": "engine", "Recommendation": "recommend", "load_catalog": "catalog",
         "PARENT_GENRES": "genres.taxonomy", "Taxonomy": "genres.taxonomy"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'recsys' has no attribute {name!r}")
