"""One validation layer for arguments the Python API and the CLI share (k, track ids, ranges).

Each function returns the cleaned value or raises :class:`~recsys.errors.InputError` with one line
naming the argument, so ``Engine.recommend(k=2.5)`` and ``recsys recommend -k 2.5`` fail alike.
"""
from __future__ import annotations

import numbers
from typing import Any, Iterable

from .errors import InputError, NotFittedError

#: Largest k any query accepts (a page of results, not the catalogue); the CLI's -k range too.
MAX_K = 1000


def check_int(value: Any, *, name: str, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool, not 2.5) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InputError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (f">= {low}" if high is None
                  else (f"<= {high}" if low is None else f"between {low} and {high}"))
        raise InputError(f"{name} must be {bounds}, got {value}")
    return value


def check_k(k: Any, *, name: str = "k") -> int:
    """How many results to return: 1 .. :data:`MAX_K`."""
    return check_int(k, name=name, low=1, high=MAX_K)


def check_track_ids(ids: Any, *, name: str = "recent") -> list[str]:
    """A list of track ids; a bare string is an error (it would be split into characters)."""
    if ids is None:
        return []
    if isinstance(ids, (str, bytes)):
        raise InputError(f"{name} must be a list of track ids, not a single string (use [{ids!r}])")
    if not isinstance(ids, Iterable):
        raise InputError(f"{name} must be a list of track ids, got {type(ids).__name__}")
    out = []
    for t in ids:
        if not isinstance(t, (str, numbers.Integral)) or isinstance(t, bool):
            raise InputError(f"{name}: track ids are strings, got {t!r}")
        t = str(t).strip()
        if not t:
            raise InputError(f"{name}: empty track id")
        out.append(t)
    return out


def check_fitted(obj: Any, attribute: str, *, what: str, how: str) -> None:
    """Raise NotFittedError unless ``obj`` has ``attribute`` (set by build/fit/load)."""
    if not hasattr(obj, attribute):
        raise NotFittedError(f"{what} is not built yet: {how}")
