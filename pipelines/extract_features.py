"""Batch stage: audio folder -> one Parquet per feature block, cached, resumable, parallel.

Each file is hashed (content, not name), its excerpt decoded once and handed to every requested
block (``recsys.blocks`` registry and protocol). Every (file, block) record is cached as JSON under
``OUT/cache/<block>/<key>.json`` (key = hash of content + block + block settings + decoding
settings), written atomically the moment it is computed, so a run killed with ``kill -9`` resumes
where it stopped and redoes nothing finished. Failing files never stop the batch: each one gets a row
with ``ok=False`` and a ``reason`` in its block table and in ``OUT/failures.csv``.

Output (read by ``build-index --features``):
``OUT/<block>.parquet``: ``file`` (relative to the audio dir), ``track_id``, ``ok``, ``reason``, features...
``OUT/manifest.json``: blocks, settings, counts; ``OUT/failures.csv``: file, block, kind, reason.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from recsys.blocks import SkipFile, audio_names, default_names, extractor_version, get_extractor
from recsys.errors import DependencyError, InputError, ModelError, RecsysError, SchemaError, first_line
from recsys.io import (check_output_dir, manifest_kind, move_aside, read_table, sha256_file, sha256_json,
                       write_json, write_table)

log = logging.getLogger(__name__)

FORMAT = "recsys-features/1"
KIND = "recsys.features"
#: Errors that depend on the machine, not the file: never cached, retried on the next run.
_TRANSIENT = (DependencyError, ModelError, MemoryError, OSError)


@dataclass
class ExtractConfig:
    """What to extract and how to decode; everything but ``jobs``/``progress`` is part of cache keys."""

    blocks: tuple[str, ...] = field(default_factory=default_names)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # block -> constructor options
    excerpt_seconds: float | None = 30.0
    position: str = "middle"
    sr: int = 22050
    jobs: int = 1
    # Dask: "local" or "tcp://host:8786" (pipelines/dask_backend.py); None = here
    scheduler: str | None = None

    def decoding(self) -> dict[str, Any]:
        return {"excerpt_seconds": self.excerpt_seconds, "position": self.position, "sr": self.sr}


# ----------------------------------------------------------------------------- helpers

def discover(audio_dir: Path) -> list[Path]:
    """Audio files under ``audio_dir`` (recursive, by extension), sorted for a stable order."""
    from recsys.audio.load import AUDIO_SUFFIXES

    if not audio_dir.is_dir():
        raise InputError(f"{audio_dir}: audio directory not found")
    return sorted(p for p in audio_dir.rglob("*")
                  if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))


def read_mapping(path: str | os.PathLike | None) -> dict[str, str]:
    """``file -> track_id`` from a CSV with columns ``file,track_id`` (files relative to the audio dir)."""
    if path is None:
        return {}
    df = read_table(path, dtype={"file": str, "track_id": str})
    missing = [c for c in ("file", "track_id") if c not in df.columns]
    if missing:
        raise SchemaError(f"{path}: missing column(s) {', '.join(missing)} (need file,track_id)")
    df = df.dropna(subset=["file", "track_id"])
    return {str(f).strip(): str(t).strip() for f, t in zip(df["file"], df["track_id"])}


def parse_sets(items: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
    """``["cnn.model=PATH", "spectral.n_mels=96"]`` -> ``{"cnn": {"model": "PATH"}, ...}``
    (JSON values parsed)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        block, dot, opt = key.strip().partition(".")
        if not sep or not dot or not block or not opt:
            raise InputError(f"--set {item!r}: expected block.key=value (e.g. cnn.model=models/cnn)")
        try:
            parsed: Any = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out.setdefault(block, {})[opt] = parsed
    return out


def _resolve(spec: str) -> tuple[str, Any]:
    """Block name and factory: a registered name, or ``module:Class`` for a plug-in block."""
    if ":" in spec and spec not in audio_names():
        module, _, cls = spec.partition(":")
        try:
            klass = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as exc:
            raise InputError(f"cannot import feature block {spec!r} ({exc})") from None
        return str(getattr(klass, "name", cls)), klass
    if spec not in audio_names():
        raise InputError(f"unknown feature block {spec!r} "
                         f"(choose from {', '.join(audio_names())}, or module:Class)")

    def factory(**options: Any) -> Any:
        try:
            return get_extractor(spec, **options)
        except ImportError as exc:
            raise DependencyError(f"feature block {spec!r} is unavailable ({exc})") from None
        except TypeError as exc:  # unknown keyword option
            raise InputError(f"feature block {spec!r}: bad option ({exc})") from None

    return spec, factory


def build_extractors(config: ExtractConfig) -> dict[str, Any]:
    """Instantiate every requested block once (a bad option is an error before any work starts)."""
    out: dict[str, Any] = {}
    for spec in config.blocks:
        name, factory = _resolve(spec)
        if name in out:
            raise InputError(f"block {name!r} requested twice")
        out[name] = factory(**config.options.get(name, config.options.get(spec, {})))
    unknown = set(config.options) - set(out) - set(config.blocks)
    if unknown:
        raise InputError(f"--set for block(s) not requested: {', '.join(sorted(unknown))}")
    return out


def cache_key(content_sha: str, block: str, settings: dict[str, Any], decoding: dict[str, Any]) -> str:
    return sha256_json({"content": content_sha, "block": block, "settings": settings, "decoding": decoding,
                        "format": FORMAT})[:40]


def _cache_path(out: Path, block: str, key: str) -> Path:
    return out / "cache" / block / f"{key}.json"


def _read_cached(path: Path) -> dict[str, Any] | None:
    """A cached record, or None when absent or unreadable (a corrupted entry is recomputed)."""
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        return rec if isinstance(rec, dict) and "ok" in rec else None
    except (OSError, ValueError):
        return None


def _clean_stale_tmp(out: Path, older_than_s: float = 600.0) -> None:
    """Remove temp files left by a killed run (only old ones: a concurrent run may own fresh ones)."""
    now = time.time()
    for p in (out / "cache").glob("*/.*.tmp"):
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime > older_than_s:
                p.unlink()


# ----------------------------------------------------------------------------- per-file work

_WORKER: dict[str, Any] = {}  # per worker process: the extractors, built once by _init_worker


def _init_worker(config: ExtractConfig, parent_pid: int | None = None) -> None:
    if parent_pid is not None:
        _watch_parent(parent_pid)
    _WORKER["config"] = config
    _WORKER["extractors"] = build_extractors(config)  # torch, if a block uses it, reads OMP_NUM_THREADS=1


def _watch_parent(pid: int, interval: float = 1.0) -> None:
    """Exit this worker when the main process is gone (e.g. ``kill -9``): otherwise it would wait on
    its task queue forever. Finished cache entries are already on disk."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(interval)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _record(ok: bool, reason: str, features: dict[str, Any] | None = None) -> dict[str, Any]:
    # "columns" keeps the block's column order (the JSON writer sorts dict keys)
    return {"ok": ok, "reason": reason, "features": features or {}, "columns": list(features or {})}


def _ordered(rec: dict[str, Any]) -> dict[str, Any]:
    feats = rec.get("features", {})
    order = [c for c in rec.get("columns", []) if c in feats]
    return {c: feats[c] for c in order + sorted(set(feats) - set(order))}


def process_file(path: str, rel: str, todo: list[tuple[str, str]],
                 out: str) -> tuple[str, dict[str, dict], dict[str, str]]:
    """Decode one excerpt, run each missing block on it, cache each result as soon as it exists.

    Returns ``(rel, {block: record}, {block: kind})`` with kind ``ok``, ``skip`` (a property of the
    file, cached) or ``error`` (machine-dependent or unexpected, not cached, retried next run).
    """
    from recsys.audio.load import load_excerpt

    config: ExtractConfig = _WORKER["config"]
    extractors = _WORKER["extractors"]
    records: dict[str, dict] = {}
    kinds: dict[str, str] = {}

    def done(block: str, key: str, rec: dict, kind: str) -> None:
        records[block], kinds[block] = rec, kind
        if kind != "error":
            write_json(_cache_path(Path(out), block, key), {**rec, "file": rel, "block": block})

    try:
        y, sr = load_excerpt(path, sr=config.sr, seconds=config.excerpt_seconds, position=config.position)
        if y.size == 0:
            raise InputError("no audio samples after decoding (empty stream)")
    except _TRANSIENT as exc:
        for block, key in todo:
            done(block, key, _record(False, _one_line(exc)), "error")
        return rel, records, kinds
    except (InputError, SkipFile) as exc:
        for block, key in todo:
            done(block, key, _record(False, _one_line(exc)), "skip")
        return rel, records, kinds
    except Exception as exc:  # libsndfile/soxr surprises: reported, never fatal
        for block, key in todo:
            done(block, key, _record(False, f"decode failed: {type(exc).__name__}: {_one_line(exc)}"),
                 "error")
        return rel, records, kinds
    for block, key in todo:
        try:
            feats = extractors[block].extract(y, sr, path=Path(path))
            done(block, key, _record(True, "", _plain(feats)), "ok")
        except SkipFile as exc:
            done(block, key, _record(False, _one_line(exc)), "skip")
        except _TRANSIENT as exc:
            done(block, key, _record(False, _one_line(exc)), "error")
        except RecsysError as exc:
            done(block, key, _record(False, _one_line(exc)), "skip")
        except Exception as exc:
            log.debug("block %s failed on %s:\n%s", block, rel, traceback.format_exc())
            done(block, key, _record(False, f"{type(exc).__name__}: {_one_line(exc)}"), "error")
    return rel, records, kinds


def _one_line(exc: BaseException) -> str:
    return first_line(exc, 500)


def _plain(feats: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe scalars (numpy -> Python)."""
    out = {}
    for k, v in feats.items():
        if hasattr(v, "item"):
            v = v.item()
        out[str(k)] = v
    return out


# ----------------------------------------------------------------------------- the run

@dataclass
class Summary:
    n_files: int
    computed: int
    cached: int
    failures: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    seconds: float
    out: Path

    def lines(self) -> list[str]:
        """A short human summary: counts, then the most common failure reasons."""
        lines = [f"{self.n_files} file(s): {self.cached} (file, block) result(s) from cache, "
                 f"{self.computed} computed in {self.seconds:.1f} s -> {self.out}"]
        for name, t in self.tables.items():
            lines.append(f"  {name}: {int(t['ok'].sum())}/{len(t)} ok")
            if f"{name}__status" in t.columns:  # blocks that grade each row (lyrics): counts per status
                counts = t[f"{name}__status"].fillna("").replace("", "error").value_counts()
                lines.append(f"  {name}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        if len(self.failures):
            groups = Counter(zip(self.failures["block"], self.failures["reason"])).most_common()
            lines.append(f"  {len(self.failures)} failure(s) of {len(groups)} kind(s) "
                         f"(see {self.out / 'failures.csv'}):")
            for (block, reason), n in groups[:8]:
                lines.append(f"    {n} x [{block}] {reason}")
            if len(groups) > 8:  # the listed counts always add up to the total
                rest = groups[8:]
                lines.append(f"    {sum(n for _, n in rest)} x {len(rest)} other kind(s), in failures.csv")
        return lines


@contextlib.contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Spawned workers inherit OMP/BLAS limits of 1 thread: N processes on N cores, no oversubscription."""
    keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(audio_dir: str | os.PathLike, out: str | os.PathLike, config: ExtractConfig | None = None, *,
        mapping: str | os.PathLike | None = None, progress: bool = True, force: bool = False,
        only_mapped: bool = False) -> Summary:
    """Extract every requested block for every audio file under ``audio_dir`` into ``out``.

    ``out`` is new, empty or an earlier features dir (resumed); anything else needs ``force``.
    ``mapping`` (``file,track_id``, e.g. ``recsys spotify match``'s matches.csv) keys files by track id;
    ``only_mapped`` skips the files it does not name.
    """
    from recsys.progress import bar as progress_bar

    t0 = time.perf_counter()
    config = config or ExtractConfig()
    audio_dir, out = Path(audio_dir), Path(out)
    check_output_dir(out, kind=KIND, inputs=[audio_dir, mapping], force=force)
    if force and out.is_dir() and any(out.iterdir()) and manifest_kind(out) != KIND:
        move_aside(out)  # --force replaces a folder that is not a features dir (printed), never merges
    files = discover(audio_dir)
    if not files:
        raise InputError(f"{audio_dir}: no audio files found")
    track_of = read_mapping(mapping)
    if only_mapped:
        if mapping is None:
            raise InputError("--only-mapped needs --mapping")
        files = [p for p in files if p.relative_to(audio_dir).as_posix() in track_of or p.name in track_of]
        if not files:
            raise InputError(f"{mapping}: names none of the audio files under {audio_dir} "
                             "(its file column is relative to the audio dir)")
    extractors = build_extractors(config)
    settings = {name: {**ext.settings(), "block_version": extractor_version(name)}
                for name, ext in extractors.items()}
    decoding = config.decoding()
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "manifest.json").exists():  # marks the dir as ours at once, so a killed run resumes
        write_json(out / "manifest.json", {"kind": KIND, "format": FORMAT, "complete": False})
    _clean_stale_tmp(out)

    rels = [str(p.relative_to(audio_dir).as_posix()) for p in files]
    results: dict[str, dict[str, dict]] = {r: {} for r in rels}
    kinds: dict[str, dict[str, str]] = {r: {} for r in rels}
    tasks: list[tuple[str, str, list[tuple[str, str]]]] = []
    cached = 0
    for p, rel in zip(files, rels):
        try:
            digest = sha256_file(p)
        except OSError as exc:
            for name in extractors:
                results[rel][name] = _record(False, f"cannot read file ({_one_line(exc)})")
                kinds[rel][name] = "error"
            continue
        todo = []
        for name in extractors:
            key = cache_key(digest, name, settings[name], decoding)
            rec = _read_cached(_cache_path(out, name, key))
            if rec is None:
                todo.append((name, key))
            else:
                results[rel][name] = rec
                kinds[rel][name] = "ok" if rec["ok"] else "skip"
                cached += 1
        if todo:
            tasks.append((str(p), rel, todo))

    computed = 0
    bar = progress_bar(total=len(files), initial=len(files) - len(tasks), desc="features", unit="file",
                       enabled=progress, leave=True)

    def collect(rel: str, recs: dict, ks: dict) -> None:
        nonlocal computed
        results[rel].update(recs)
        kinds[rel].update(ks)
        computed += len(recs)
        bar.update(1)

    if config.scheduler and tasks:
        from .dask_backend import run_tasks

        run_tasks(tasks, config, out, collect, audio_dir=audio_dir, init=_init_worker, process=process_file,
                  failed=lambda reason: _record(False, reason))
    elif config.jobs <= 1 or len(tasks) <= 1:
        _init_worker(config)
        for path, rel, todo in tasks:
            collect(*process_file(path, rel, todo, str(out)))
    else:
        _run_pool(tasks, config, out, collect)
    bar.close()

    tables: dict[str, pd.DataFrame] = {}
    fail_rows = []
    for name, ext in extractors.items():
        rows = []
        for p, rel in zip(files, rels):
            rec = results[rel].get(name) or _record(False, "not processed")
            track = track_of.get(rel) or track_of.get(p.name) or p.stem
            rows.append({"file": rel, "track_id": track, "ok": bool(rec["ok"]), "reason": str(rec["reason"]),
                         **_ordered(rec)})
            if not rec["ok"]:
                fail_rows.append({"file": rel, "block": name, "kind": kinds[rel].get(name, "error"),
                                  "reason": str(rec["reason"])})
        table = pd.DataFrame(rows)
        table["ok"] = table["ok"].astype(bool)
        table = ext.finalize(table)
        write_table(table, out / f"{name}.parquet")
        tables[name] = table
    failures = pd.DataFrame(fail_rows, columns=["file", "block", "kind", "reason"])
    write_table(failures, out / "failures.csv")
    write_json(out / "manifest.json", {
        "kind": KIND, "format": FORMAT, "audio_dir": str(audio_dir.resolve()), "n_files": len(files),
        "mapping": str(mapping) if mapping else None, "decoding": decoding,
        "blocks": {name: {"settings": settings[name], "rows": len(t), "ok": int(t["ok"].sum()),
                          "file": f"{name}.parquet",
                          "columns": [c for c in t.columns if c not in ("file", "track_id", "ok", "reason")]}
                   for name, t in tables.items()},
        "n_failures": len(failures), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    return Summary(n_files=len(files), computed=computed, cached=cached, failures=failures, tables=tables,
                   seconds=time.perf_counter() - t0, out=out)


def _run_pool(tasks, config: ExtractConfig, out: Path, collect) -> None:
    """Files in parallel (worker processes). If a worker dies (segfault, OOM kill), the files it
    took down with it are retried one per fresh process, so only the guilty file is reported."""
    import multiprocessing as mp

    # forkserver: one clean server process (no torch/OpenMP threads, unlike this one) imports the
    # heavy modules once; each worker is forked from it, so N workers do not pay N import costs.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["pipelines.extract_features", "recsys.audio.frontend", "recsys.audio.stats",
                                "librosa.core.spectrum", "librosa.feature", "librosa.onset", "scipy.signal",
                                "soundfile", "soxr"])

    def pool(n: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker,
                                   initargs=(config, os.getpid()))

    def fail(rel: str, todo, reason: str) -> None:
        collect(rel, {b: _record(False, reason) for b, _ in todo}, {b: "error" for b, _ in todo})

    retry = []
    with _single_threaded_children():
        with pool(config.jobs) as ex:
            futures = {ex.submit(process_file, path, rel, todo, str(out)): (path, rel, todo)
                       for path, rel, todo in tasks}
            for fut in as_completed(futures):
                path, rel, todo = futures[fut]
                try:
                    collect(*fut.result())
                except BrokenProcessPool:
                    retry.append((path, rel, todo))
                except Exception as exc:  # e.g. an unpicklable result: report, go on
                    fail(rel, todo, f"{type(exc).__name__}: {_one_line(exc)}")
        for path, rel, todo in retry:
            with pool(1) as ex:
                try:
                    collect(*ex.submit(process_file, path, rel, todo, str(out)).result())
                except BrokenProcessPool:
                    fail(rel, todo, "worker process crashed on this file")
                except Exception as exc:
                    fail(rel, todo, f"{type(exc).__name__}: {_one_line(exc)}")
