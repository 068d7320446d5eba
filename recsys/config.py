"""Config as dataclasses, loaded from TOML sections. No global state.

Each module owns the dataclass for its own tunables (e.g. ``IndexConfig`` in ``index.py``);
this module turns a TOML table, a manifest's JSON or ``--set`` options into such a dataclass with one
parser (:func:`options_to_config`): values converted to the fields' types, unknown keys rejected.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

from .errors import InputError

T = TypeVar("T")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def to_bool(value: Any, *, name: str = "value") -> bool:
    """``"yes"``/``"off"``/``1``/``True`` -> bool; anything else is an InputError naming ``name``."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE or v in _FALSE:
            return v in _TRUE
        raise InputError(f"option {name}: expected a boolean (true/false), got {value!r}")
    if isinstance(value, (bool, int)) and value in (0, 1):
        return bool(value)
    raise InputError(f"option {name}: expected a boolean (true/false), got {value!r}")


def looks_like_path(model: str, *, suffixes: tuple[str, ...] = ()) -> bool:
    """True when a model argument names a file or folder (or ends in one of ``suffixes``),
    not a model name."""
    return (os.sep in model or model.startswith((".", "~")) or (bool(suffixes) and model.endswith(suffixes))
            or Path(model).expanduser().exists())


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """Convert one option value (often a string from ``--set block.key=value``) to the field's type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str)
                                                     and value.strip().lower() in ("", "none", "null"))):
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, name)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(errors[0] if errors else f"option {name}: cannot use {value!r}")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise InputError(f"option {name}: expected a table of {hint.__name__} settings, got {value!r}")
        return options_to_config(hint, value, where=name)
    if origin is tuple:
        parts = [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else list(value)
        item = args[0] if args else str
        return tuple(_coerce(p, item, name) for p in parts)
    try:
        if hint is bool:
            return to_bool(value, name=name)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        if hint is Path:
            return Path(value)
    except (TypeError, ValueError):
        raise InputError(f"option {name}: cannot use {value!r} "
                         f"(expected {getattr(hint, '__name__', hint)})") from None
    return value


def options_to_config(cls: type[T], options: dict[str, Any] | None, *, where: str = "options") -> T:
    """Dataclass ``cls`` from keyword options (CLI ``--set``, TOML), each converted to its field's type.

    The one option parser of recsys: unknown keys and unconvertible values are one-line InputErrors.
    """
    options = dict(options or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise InputError(f"{where}: unknown option(s) {', '.join(unknown)} for {cls.__name__} "
                         f"(known: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in options.items()}
    return cls(**kwargs)


def option_default(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (CLI defaults come from here, not restated)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a TOML file; a missing or invalid file is a one-line InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: config file not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: invalid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (expected a TOML config)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read config ({exc.strerror or exc})") from None


def load_section(path: str | os.PathLike | None, section: str, cls: type[T]) -> T:
    """Read ``[section]`` of a TOML file into ``cls`` (values converted to the fields' types, nested tables
    to nested dataclasses); no file means defaults."""
    if path is None:
        return cls()
    return options_to_config(cls, load_toml(path).get(section, {}), where=f"{path}:[{section}]")
