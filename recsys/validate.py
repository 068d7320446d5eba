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


def check_float(value: Any, *, name: str, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> float:
    """A finite number within [low, high] (``low_open``: strictly above low)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value
            or abs(value) == float("inf")):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if low is not None and (value <= low if low_open else value < low):
        raise InputError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise InputError(f"{name} must be <= {high}, got {value}")
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


#: Largest seed (numpy's SeedSequence takes any non-negative int; the CLI's --seed range).
MAX_SEED = 2**32 - 1
#: Upper bound of synthetic users (the simulator holds every play in memory); the CLI's range too.
MAX_USERS = 1_000_000


def check_path(value: Any, *, name: str, optional: bool = False) -> Any:
    """A filesystem path (str or os.PathLike); None only when ``optional``."""
    import os

    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)) or (isinstance(value, str)
                                                                               and not value.strip()):
        raise InputError(f"{name} must be a path (str or pathlib.Path), got {value!r}")
    return value


def check_table(value: Any, *, name: str) -> Any:
    """A table argument: a path or a pandas DataFrame (None passes: the caller decides if it is needed)."""
    if value is None:
        return None
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value
    try:
        return check_path(value, name=name)
    except InputError:
        raise InputError(f"{name} must be a path or a pandas DataFrame, got {type(value).__name__} "
                         f"{value!r:.60}") from None


def check_names(value: Any, *, name: str) -> list[str] | None:
    """A list of names (blocks, sources); a bare string is an error (it would be split into letters)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise InputError(f"{name} must be a list of names, not a single string (use [{value!r}])")
    if not isinstance(value, Iterable):
        raise InputError(f"{name} must be a list of names, got {type(value).__name__}")
    out = list(value)
    for v in out:
        if not isinstance(v, str) or not v.strip():
            raise InputError(f"{name}: names are non-empty strings, got {v!r}")
    return out


def check_weights(value: Any, *, name: str = "weights") -> dict[str, float] | None:
    """Blend weights: a dict of name -> finite number >= 0 (NaN would turn every score into NaN)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError(f"{name} must be a dict of name -> number, got {type(value).__name__}")
    return {str(k): check_float(v, name=f"{name}[{k!r}]", low=0.0) for k, v in value.items()}


def check_build_args(*, catalog: Any, histories: Any, simulate_users: Any, out: Any, blocks: Any,
                     features: Any, genre_model: Any, seed: Any, cache_dir: Any) -> dict[str, Any]:
    """The arguments of ``Engine.build``, cleaned, or one InputError naming the first bad one."""
    return {"catalog": check_table(catalog, name="catalog"),
            "histories": check_table(histories, name="histories"),
            "simulate_users": None if simulate_users is None
            else check_int(simulate_users, name="simulate_users", low=0, high=MAX_USERS),
            "out": check_path(out, name="out", optional=True),
            "blocks": check_names(blocks, name="blocks"),
            "features": check_path(features, name="features", optional=True),
            "genre_model": check_path(genre_model, name="genre_model", optional=True),
            "seed": None if seed is None else check_int(seed, name="seed", low=0, high=MAX_SEED),
            "cache_dir": check_path(cache_dir, name="cache_dir", optional=True)}
