"""CLI commands for this area (filled in by its issue)."""
from __future__ import annotations

import click


def register(main: click.Group) -> None:
    """Add this module's commands to the top-level ``recsys`` group."""
