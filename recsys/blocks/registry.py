"""The block registry: every module of ``recsys.blocks`` that declares ``SPEC`` is a block.

Modules are found with :mod:`pkgutil`, so a new block needs no edit anywhere else.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any

from ..errors import InputError
from .base import BlockExtractor, BlockSpec

_PACKAGE = __name__.rpartition(".")[0]


@functools.lru_cache(maxsize=1)
def specs() -> dict[str, BlockSpec]:
    """Every block declared in this package, by name, in their declared order."""
    found = []
    for info in pkgutil.iter_modules(importlib.import_module(_PACKAGE).__path__):
        module = importlib.import_module(f"{_PACKAGE}.{info.name}")
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


def default_weight(name: str) -> float:
    """A block's declared embedding weight (1.0 for unknown names)."""
    spec = specs().get(name)
    return spec.weight if spec is not None else 1.0
