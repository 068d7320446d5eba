"""Every CLI command, driven with generated bad values for its numeric and path options.

Each case starts from a command line that works (or fails cleanly) and breaks one option. Whatever
happens, the user sees exit 0 or 2, never 1, never a traceback, and no file outside the test's
temporary directory changes. The cases are drawn with a fixed seed and capped, so the run is bounded.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import click
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from recsys.cli import main
from recsys.testing.cli import commands
from recsys.testing.engine import make_catalog, planted_histories

ROOT = Path(__file__).resolve().parents[1]
SKIP = {("serve",), ("spotify", "login")}  # a long-running server; an interactive browser login
CASES_PER_COMMAND = 6
NUMBERS = ["-5", "0", "-1", "abc", "1e12", "nan", "inf", "2.5", "99999999"]
TABLE_OUT = {("genres", "map"), ("genres", "predict"), ("rules", "mine"), ("simulate-users",),
             ("cnn", "predict"), ("spotify", "import"), ("spotify", "liked")}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small catalogue, histories, a built index and one audio file: the valid values cases start from."""
    d = tmp_path_factory.mktemp("fuzz")
    cat = make_catalog(60)
    cat.to_csv(d / "cat.csv", index=False)
    planted_histories(cat, n_users=30).to_parquet(d / "h.parquet", index=False)
    (d / "engine.toml").write_text("[engine]\ngenre_probs = false\n[engine.index]\nn_clusters = 4\n")
    r = CliRunner().invoke(main, ["build-index", "--catalog", str(d / "cat.csv"),
                                  "--histories", str(d / "h.parquet"),
                                  "--config", str(d / "engine.toml"), "--out", str(d / "idx")])
    assert r.exit_code == 0, r.output
    (d / "audio").mkdir()
    sf.write(d / "audio" / "a.wav", (0.2 * np.sin(np.arange(22050) * 0.05)).astype("float32"), 22050)
    (d / "empty.csv").write_bytes(b"")
    (d / "garbage.parquet").write_bytes(b"\x00\x01 not a table")
    return d


def valid_args(path: tuple[str, ...], cmd: click.Command, d: Path, case: Path) -> list[str] | None:
    """A plausible command line for ``cmd`` (None when it needs something this world cannot give)."""
    values = {"--catalog": d / "cat.csv", "--histories": d / "h.parquet", "--index": d / "idx",
              "--audio-dir": d / "audio", "--track": "t0001", "--recent": "t0001", "--model": d / "no-model",
              "--config": d / "engine.toml" if path == ("build-index",) else None}
    args: list[str] = []
    for p in cmd.params:
        if isinstance(p, click.Argument):
            args.append(str(d / "audio" / "a.wav") if p.name == "file" else "t0001")
        elif isinstance(p, click.Option) and (p.required or p.opts[0] in ("--config",)):
            name = p.opts[0]
            if name == "--out":
                out = case / ("out.csv" if path in TABLE_OUT else "out.png" if path == ("report",) else "out")
                args += [name, str(out)]
            elif values.get(name) is not None:
                args += [name, str(values[name])]
            elif p.required:
                return None
    if path == ("build-index",):
        args += ["--catalog", str(d / "cat.csv"), "--simulate-users", "0"]
    if path == ("stems", "separate"):
        args += ["--backend", "classical", "--seconds", "2"]
    if path == ("lyrics", "transcribe"):
        args += ["--model", str(d / "no-whisper"), "--no-separate"]
    return args


def bad_values(p: click.Option, d: Path) -> list[str]:
    """Values a user could mistype for this option."""
    if isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType)):
        return NUMBERS
    if isinstance(p.type, click.Path):
        return [str(d / "missing" / "x.csv"), str(d), str(d / "empty.csv"), str(d / "garbage.parquet")]
    return []


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(mtime, size) of every project file outside the virtualenv, caches and VCS."""
    skip = {".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "out", "build"}
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [x for x in dirnames if x not in skip and not x.endswith(".egg-info")]
        for f in filenames:
            st = os.stat(os.path.join(dirpath, f))
            out[os.path.join(dirpath, f)] = (st.st_mtime_ns, st.st_size)
    return out


def cases(d: Path) -> list[tuple[tuple[str, ...], str, str]]:
    """(command path, option, bad value): up to CASES_PER_COMMAND per command, seeded."""
    rng = random.Random(7)
    out = []
    for path, cmd in commands(main):
        if path in SKIP:
            continue
        pool = [(path, p.opts[0], v) for p in cmd.params if isinstance(p, click.Option)
                for v in bad_values(p, d)]
        rng.shuffle(pool)
        out += pool[:CASES_PER_COMMAND]
    return out


def test_bad_values_never_crash_and_touch_nothing_outside_tmp(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for k, v in {"RECSYS_SPOTIFY_API_URL": "http://127.0.0.1:9/v1",
                 "RECSYS_SPOTIFY_AUTH_URL": "http://127.0.0.1:9", "RECSYS_SPOTIFY_CLIENT_ID": "x",
                 "RECSYS_SPOTIFY_CLIENT_SECRET": "y", "RECSYS_SPOTIFY_RETRIES": "0",
                 "RECSYS_SPOTIFY_BACKOFF": "0", "RECSYS_SPOTIFY_TIMEOUT": "1",
                 "RECSYS_CONFIG_DIR": str(tmp_path / "config")}.items():
        monkeypatch.setenv(k, v)
    before = snapshot(ROOT)
    runner = CliRunner()
    by_path = dict(commands(main))
    problems = []
    todo = cases(world)
    assert len(todo) > 40  # the generator really covers the commands
    for i, (path, option, value) in enumerate(todo):
        case = tmp_path / f"case{i}"
        case.mkdir()
        args = valid_args(path, by_path[path], world, case)
        if args is None:
            continue
        if option in args:
            j = args.index(option)
            args[j + 1] = value
        else:
            args += [option, value]
        print(f"case {i}: recsys {' '.join(path)} {option} {value}", flush=True)
        r = runner.invoke(main, [*path, *args])
        if r.exit_code not in (0, 2) or "Traceback" in r.output:
            exc = f"{type(r.exception).__name__}: {r.exception}" if r.exception else r.output.strip()[-300:]
            problems.append(f"recsys {' '.join(path)} {option} {value!r} -> exit {r.exit_code}: {exc}")
    assert not problems, "\n".join(problems)
    after = snapshot(ROOT)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    assert not changed, f"files outside the test's tmp dir changed: {changed[:10]}"


def _unwritable(tmp_path: Path) -> Path | None:
    """A folder this process cannot create files in (root ignores mode bits: /sys then), or None."""
    import tempfile

    ro = tmp_path / "ro"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o500)
    for cand in (ro, Path("/sys")):
        try:
            fd, p = tempfile.mkstemp(dir=cand)
        except OSError:
            return cand
        os.close(fd)
        os.unlink(p)
    return None


def _digest(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_file_outputs_never_crash_and_keep_user_files(world, tmp_path, monkeypatch):
    """Every command with --out, aimed at a user's file, an input, an unwritable folder, or below a file."""
    monkeypatch.chdir(tmp_path)
    for k, v in {"RECSYS_SPOTIFY_API_URL": "http://127.0.0.1:9/v1", "RECSYS_SPOTIFY_AUTH_URL": "http://127.0.0.1:9",
                 "RECSYS_SPOTIFY_CLIENT_ID": "x", "RECSYS_SPOTIFY_CLIENT_SECRET": "y",
                 "RECSYS_SPOTIFY_RETRIES": "0", "RECSYS_SPOTIFY_BACKOFF": "0", "RECSYS_SPOTIFY_TIMEOUT": "1",
                 "RECSYS_CONFIG_DIR": str(tmp_path / "config")}.items():
        monkeypatch.setenv(k, v)
    inputs = _digest(world)
    ro = _unwritable(tmp_path)
    runner = CliRunner()
    problems = []
    n = 0
    for path, cmd in commands(main):
        if path in SKIP or not any(isinstance(p, click.Option) and "--out" in p.opts for p in cmd.params):
            continue
        case = tmp_path / "_".join(path)
        case.mkdir()
        args = valid_args(path, cmd, world, case)
        if args is None or "--out" not in args:
            continue
        j = args.index("--out") + 1
        mine = case / Path(args[j]).name
        mine.write_bytes(b"the user's own file")
        (case / "plain.txt").write_text("a file, not a folder")
        given = world / ("h.parquet" if path == ("rules", "mine") else "cat.csv")
        name = Path(args[j]).name
        targets = {"user's file": mine, "input": given, "below a file": case / "plain.txt" / name}
        if ro is not None:
            targets["unwritable"] = ro / "sub" / name
        for what, target in targets.items():
            args[j] = str(target)
            r = runner.invoke(main, [*path, *args])
            n += 1
            if r.exit_code not in (0, 2) or "Traceback" in r.output:
                exc = (f"{type(r.exception).__name__}: {r.exception}" if r.exception
                       else r.output.strip()[-300:])
                problems.append(f"recsys {' '.join(path)} --out <{what}> -> exit {r.exit_code}: {exc}")
            elif r.exit_code == 0:
                problems.append(f"recsys {' '.join(path)} --out <{what}> was accepted")
        if mine.read_bytes() != b"the user's own file":
            problems.append(f"recsys {' '.join(path)} overwrote the user's file {mine.name}")
    assert n >= 30  # the file-output commands really ran
    assert not problems, "\n".join(problems)
    assert _digest(world) == inputs, "an input file changed"
