"""HTTP API and web page over an index (``recsys serve``): FastAPI app, hot-swappable index snapshot."""
from __future__ import annotations

from .app import create_app
from .state import IndexHolder, ServeOptions, Snapshot

__all__ = ["IndexHolder", "ServeOptions", "Snapshot", "create_app"]
