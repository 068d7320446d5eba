"""Config as dataclasses, loaded from TOML sections. No global state.

Each module owns the dataclass for its own tunables (e.g. ``IndexConfig`` in ``index.py``);
this module only turns a TOML table into such a dataclass, rejecting unknown keys.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from .errors import InputError

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None, *, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclass fields are built recursively."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__}")
    kwargs = {}
    for name, value in data.items():
        field = fields[name]
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            kwargs[name] = from_dict(type(default), value, where=f"{where}.{name}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: config file not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: invalid TOML ({exc})") from None


def load_section(path: str | os.PathLike | None, section: str, cls: type[T]) -> T:
    """Read ``[section]`` of a TOML file into ``cls``; no file means defaults."""
    if path is None:
        return cls()
    return from_dict(cls, load_toml(path).get(section, {}), where=f"{path}:[{section}]")


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)
