"""Atomic writes and directory swaps never leave partial state behind."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from recsys.config import load_section, options_to_config
from recsys.errors import InputError
from recsys.io import atomic_dir, read_json, read_table, sha256_json, write_json, write_table


def test_atomic_dir_keeps_previous_on_failure(tmp_path):
    target = tmp_path / "idx"
    with atomic_dir(target) as d:
        (d / "a.txt").write_text("v1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "a.txt").write_text("v2")
            raise RuntimeError("killed mid-build")
    assert (target / "a.txt").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]  # no leftovers
    with atomic_dir(target) as d:
        (d / "a.txt").write_text("v3")
    assert (target / "a.txt").read_text() == "v3"


def test_write_table_roundtrip_by_extension(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    for name in ("t.csv", "t.tsv", "t.parquet", "t.csv.gz"):
        write_table(df, tmp_path / name)
        assert read_table(tmp_path / name).equals(df)


def test_corrupted_json_is_input_error(tmp_path):
    p = tmp_path / "m.json"
    write_json(p, {"x": 1})
    assert read_json(p) == {"x": 1}
    p.write_text('{"x": ')
    with pytest.raises(InputError, match="corrupted"):
        read_json(p)


@dataclasses.dataclass
class _Inner:
    k: int = 3
    weight: float = 1.0
    names: tuple[str, ...] = ("a",)


@dataclasses.dataclass
class _Outer:
    name: str = "a"
    inner: _Inner = dataclasses.field(default_factory=_Inner)


def test_config_parser_converts_types_and_rejects_unknown_keys():
    cfg = options_to_config(_Outer, {"name": "b", "inner": {"k": 5}})
    assert cfg.inner.k == 5 and cfg.name == "b"
    with pytest.raises(InputError, match="unknown option"):
        options_to_config(_Outer, {"nme": "typo"})
    assert sha256_json({"a": 1, "b": 2}) == sha256_json({"b": 2, "a": 1})


def test_load_section_converts_toml_values_to_the_fields_types(tmp_path):
    (tmp_path / "c.toml").write_text('[x]\nname = "b"\n[x.inner]\nk = 5\nweight = 2\nnames = ["p", "q"]\n')
    cfg = load_section(tmp_path / "c.toml", "x", _Outer)
    assert cfg.inner.k == 5 and cfg.inner.names == ("p", "q")  # a TOML array becomes the field's tuple
    assert isinstance(cfg.inner.weight, float) and cfg.inner.weight == 2.0  # a TOML integer, a float field
    (tmp_path / "bad.toml").write_text('[x.inner]\nk = "five"\n')
    with pytest.raises(InputError, match=r"inner\.k: cannot use 'five'"):
        load_section(tmp_path / "bad.toml", "x", _Outer)
    assert load_section(None, "x", _Outer) == _Outer()


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        write_json(tmp_path / "f.json", {"a": 1})
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("1")
    finally:
        os.umask(mask)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
