"""Reading tables by extension, atomic writes, safe outputs, and content hashes.

Every file recsys writes goes through a temporary sibling and ``os.replace`` so a crash never
leaves a half-written file where a good one was. One rule for every output (file or folder): never
write to an input, inside an input folder or over a folder holding an input; replace an existing
output only when recsys wrote it (an artefact's manifest, or the ``.NAME.recsys`` sidecar of a single
file) or with ``force``, which moves the old one aside into ``.recsys-trash/<date>/`` next to it and
says so. Files of the user's inside a recsys artefact folder are carried over into the new one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

from .errors import IndexFormatError, InputError, ModelError, OutputError, RecsysError, first_line

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".parquet", ".pq")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".tsv", ".tsv.gz", ".txt")):
        return "tsv"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    raise InputError(f"{path}: unsupported table extension (use one of {', '.join(TABLE_SUFFIXES)})")


def _sniff_text(path: Path, kind: str) -> tuple[str, str]:
    """(encoding, delimiter) of a text table from its first bytes: BOMs, UTF-8 or Latin-1; , ; tab |."""
    import csv
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(1 << 16)
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read {kind} table ({exc})") from None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif head.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
    else:
        try:
            head.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError as exc:
            # a cut multi-byte character at the end of the sample is still UTF-8
            encoding = "utf-8" if exc.start >= len(head) - 3 else "latin-1"
    text = head.decode(encoding, errors="ignore")
    first = text.splitlines()[0] if text.splitlines() else ""
    default = "\t" if kind == "tsv" else ","
    delimiter = default
    if first.count(default) == 0:
        try:
            delimiter = csv.Sniffer().sniff("\n".join(text.splitlines()[:20]), delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = default
    return encoding, delimiter


def decode_lines(data: bytes) -> tuple[str, int]:
    """Text of ``data`` decoded line by line: UTF-8 where a line is valid UTF-8, else Windows-1252/Latin-1.

    Returns (text, lines not in UTF-8). Files assembled from several sources mix both.
    """
    lines = data.split(b"\n")
    n_other = 0
    out = []
    for line in lines:
        try:
            out.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            n_other += 1
            try:
                out.append(line.decode("cp1252"))
            except UnicodeDecodeError:  # the 5 bytes cp1252 leaves undefined
                out.append(line.decode("latin-1"))
    text = "\n".join(out)
    return (text[1:] if text.startswith("\ufeff") else text), n_other


def _read_mixed(path: Path, *, sep: str, dtype: dict | None) -> pd.DataFrame:
    """A text table whose lines are UTF-8 or Latin-1, each line decoded on its own."""
    import gzip
    import io as _io

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = fh.read()
    text, n_other = decode_lines(data)
    n_lines = max(1, text.count("\n") + (not text.endswith("\n")))
    log.warning("%s: %d of %d line(s) are not UTF-8, read as Latin-1 (the others as UTF-8)%s",
                path, n_other, n_lines, f", separated by {sep!r}" if sep not in (",", "\t") else "")
    return pd.read_csv(_io.StringIO(text), sep=sep, dtype=dtype, low_memory=False)


def read_table(path: str | os.PathLike, *, dtype: dict | None = None) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet table chosen by extension; raise InputError on anything unreadable.

    Text tables may be UTF-8, UTF-16 (with BOM) or Latin-1, separated by commas, semicolons, tabs or
    bars: both are detected from the first bytes and said in a warning when unusual.
    """
    path = Path(path)
    kind = _kind(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a table file")
    hint = "save it as UTF-8, comma-separated CSV or as Parquet"
    try:
        if kind == "parquet":
            df = pd.read_parquet(path)
        else:
            encoding, sep = _sniff_text(path, kind)
            if encoding == "latin-1":  # maybe only some lines: decode line by line
                df = _read_mixed(path, sep=sep, dtype=dtype)
            else:
                if encoding not in ("utf-8", "utf-8-sig") or sep != ("\t" if kind == "tsv" else ","):
                    log.warning("%s: read as %s, separated by %r", path, encoding, sep)
                try:
                    df = pd.read_csv(path, sep=sep, dtype=dtype, low_memory=False, encoding=encoding)
                except UnicodeDecodeError:  # UTF-8 at the start, other bytes further down
                    if encoding == "utf-16":
                        raise
                    df = _read_mixed(path, sep=sep, dtype=dtype)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: table is empty") from None
    except InputError:
        raise
    except (pd.errors.ParserError, UnicodeError, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read {kind} table ({first_line(exc, 200)}); {hint}") from None
    except Exception as exc:  # pyarrow raises its own exception types
        raise InputError(f"{path}: cannot read {kind} table "
                         f"({type(exc).__name__}: {str(exc)[:200]}); {hint}") from None
    if df.empty:
        raise InputError(f"{path}: table is empty")
    return df


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, output: bool = False, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else delete it.

    ``output``: ``path`` is a user-facing output (see :func:`check_output_file`): an existing file recsys
    did not write is refused, or with ``force`` moved aside; the new file gets its ``.NAME.recsys`` sidecar.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the file the permissions a plain open() would have.
        os.chmod(tmp_path, 0o666 & ~_umask())
        if output and (path.exists() or path.is_symlink()) and not written_by_recsys(path):
            if not force:
                raise OutputError(_not_ours(path, path))
            move_aside(path)
        os.replace(tmp_path, path)
        if output:
            _write_sidecar(path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes, *, output: bool = False, force: bool = False) -> None:
    """Atomically write ``data`` to ``path`` (``output``/``force``: see :func:`atomic_path`)."""
    with atomic_path(path, output=output, force=force) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def write_text(path: str | os.PathLike, text: str, *, output: bool = False, force: bool = False) -> None:
    """Atomically write ``text`` to ``path`` as UTF-8."""
    write_bytes(path, text.encode("utf-8"), output=output, force=force)


def write_json(path: str | os.PathLike, obj: Any, *, output: bool = False, force: bool = False) -> None:
    """Atomically write ``obj`` as indented, key-sorted JSON (numpy values and paths converted)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n",
               output=output, force=force)


def read_json(path: str | os.PathLike, *, what: str = "JSON file",
              error: type[RecsysError] = InputError) -> Any:
    """Read JSON; a missing or corrupted file raises ``error`` (InputError by default) naming the path."""
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: {what} is truncated or corrupted ({getattr(exc, 'msg', exc)})") from None


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_table(df: pd.DataFrame, path: str | os.PathLike, *, output: bool = False,
                force: bool = False) -> None:
    """Atomically write a table; the format follows the extension (Parquet, CSV or TSV)."""
    path = Path(path)
    kind = _kind(path)
    with atomic_path(path, output=output, force=force) as tmp:
        if kind == "parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False, sep="\t" if kind == "tsv" else ",",
                      compression="gzip" if path.name.lower().endswith(".gz") else None)


MANIFEST = "manifest.json"
TRASH = ".recsys-trash"
_BUILDING = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.building$")


def resolve_path(path: str | os.PathLike) -> Path:
    """Absolute path; a working directory that no longer exists is a clear OutputError, not a traceback."""
    try:
        return Path(path).resolve()
    except FileNotFoundError:
        raise OutputError(f"{path}: the current directory no longer exists "
                          "(an earlier build into '.' replaced it): cd into it again and retry") from None


# ----------------------------------------------------------------------------- whose file is it
def sidecar(path: str | os.PathLike) -> Path:
    """The ``.NAME.recsys`` file beside a single output file: it says recsys wrote that content."""
    path = Path(path)
    return path.parent / f".{path.name}.recsys"


def _write_sidecar(path: Path) -> None:
    write_json(sidecar(path), {"written_by": "recsys", "file": path.name, "sha256": sha256_file(path)})


def written_by_recsys(path: str | os.PathLike) -> bool:
    """True when recsys wrote ``path`` and nobody changed it since (its sidecar's checksum matches)."""
    path = Path(path)
    try:
        meta = json.loads(sidecar(path).read_text(encoding="utf-8"))
        return path.is_file() and isinstance(meta, dict) and meta.get("sha256") == sha256_file(path)
    except (OSError, ValueError):
        return False


def move_aside(path: str | os.PathLike) -> Path:
    """Move ``path`` (file or folder) into ``.recsys-trash/<date-time>/`` next to it and say so; return where.

    What ``--force`` does to an output that recsys did not write: nothing is deleted, it is set aside.
    """
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = path.parent / TRASH / stamp
    dest = base / path.name
    n = 1
    while dest.exists() or dest.is_symlink():
        n += 1
        dest = base / f"{path.name}.{n}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)
    sc = sidecar(path)
    if sc.exists():
        sc.unlink()
    log.warning("moved %s aside to %s (nothing was deleted)", path, dest)
    return dest


def _not_ours(shown: str | os.PathLike, path: Path) -> str:
    what = "folder" if path.is_dir() else "file"
    return (f"{shown}: an existing {what} that recsys did not write; choose another --out, or pass --force "
            f"to replace it (the old one is moved to {path.parent / TRASH}/)")


# ----------------------------------------------------------------------------- checks before any work
def _check_inputs(shown: str | os.PathLike, out: Path, inputs: Iterable[str | os.PathLike | None]) -> None:
    """Never write to an input, inside an input artefact folder, or over a folder holding an input."""
    for i in inputs:
        if i is None or not isinstance(i, (str, os.PathLike)):
            continue
        src = resolve_path(i)
        if src == out:
            raise OutputError(f"{shown}: is the input {i}; choose another --out")
        if src in out.parents and src.is_dir() and manifest_kind(src) is not None:
            # inside an input artefact (an index, a model): its checksums would break
            raise OutputError(f"{shown}: is inside the input folder {i} ({manifest_kind(src)} artefact); "
                              "choose another --out")
        if out in src.parents:
            raise OutputError(f"{shown}: would replace the input {i} (it lives inside); choose another --out")


def check_writable(shown: str | os.PathLike, out: Path) -> None:
    """The folder ``out`` is written in exists or can be made, is a folder, and accepts new files."""
    anc = out.parent
    while not (anc.exists() or anc.is_symlink()) and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise OutputError(f"{shown}: {anc} is a file, not a folder; choose another --out")
    try:
        fd, probe = tempfile.mkstemp(prefix=".recsys-probe.", dir=anc)
    except OSError as exc:
        raise OutputError(f"{shown}: cannot write in {anc} ({exc.strerror or exc}); choose another --out") \
            from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (),
                      force: bool = False) -> Path:
    """Check an output file before the work: not an input, not inside one, writable, and ours or ``force``.

    An existing file is replaced only when recsys wrote it (its sidecar) or with ``force`` (then it is
    moved aside when the new one is written: :func:`atomic_path` with ``output=True``).
    """
    out = resolve_path(path)
    _check_inputs(path, out, inputs)
    if out.is_dir():
        raise OutputError(f"{path}: is a folder, expected a file path; choose another --out")
    check_writable(path, out)
    if out.exists() and not force and not written_by_recsys(out):
        raise OutputError(_not_ours(path, out))
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_builds(path: str | os.PathLike) -> int:
    """Delete ``.<name>.<pid>.*.building`` siblings of ``path`` left by processes that no longer run."""
    path = resolve_path(path)
    n = 0
    if not path.parent.is_dir():
        return 0
    for p in path.parent.iterdir():
        m = _BUILDING.match(p.name)
        if m and m["name"] == path.name and p.is_dir() and not _pid_alive(int(m["pid"])):
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n


# ----------------------------------------------------------------------------- one writer per target
_HELD: dict[Path, list] = {}  # resolved target -> [lock file descriptor, depth] held by this process


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the ``.NAME.lock`` (fcntl) of an output for this process; another writer is a clear OutputError.

    Re-entrant within a process; the lock file is removed when the outermost holder is done.
    """
    import fcntl

    out = resolve_path(path)
    held = _HELD.get(out)
    if held is not None:
        held[1] += 1
        try:
            yield out
        finally:
            held[1] -= 1
        return
    check_writable(path, out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create {out.parent} ({exc.strerror or exc})") from None
    lock = _lock_path(out)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            finally:
                os.close(fd)
            raise OutputError(f"{path}: another recsys process (pid {pid}) is writing it right now; "
                              "wait for it to finish, or choose another --out") from None
        try:  # the holder before us may have removed the file between our open and our lock: retry
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _HELD[out] = [fd, 1]
    try:
        yield out
    finally:
        del _HELD[out]
        try:
            os.unlink(lock)
        except FileNotFoundError:
            pass
        os.close(fd)


def _owned(directory: Path) -> set[str] | None:
    """Paths an artefact folder's manifest lists (and their folders); None when it is no recsys artefact."""
    try:
        man = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = man.get("files") if isinstance(man, dict) else None
    if not isinstance(files, dict):
        return set() if isinstance(man, dict) and man.get("kind") else None
    owned = {MANIFEST}
    for name in files:
        parts = Path(name).parts
        owned.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return owned


def foreign_entries(directory: str | os.PathLike) -> list[str]:
    """Entries of an artefact folder that its manifest does not list: the user's, kept on a rebuild."""
    d = Path(directory)
    owned = _owned(d)
    if not owned:
        return []
    out: list[str] = []

    def walk(rel: str) -> None:
        for p in sorted((d / rel).iterdir() if rel else d.iterdir()):
            r = f"{rel}/{p.name}" if rel else p.name
            if r not in owned:
                if not p.name.startswith(".") or not p.name.endswith((".tmp", ".building")):
                    out.append(r)
            elif p.is_dir() and not p.is_symlink():
                walk(r)

    walk("")
    return out


def _carry_over(old: Path, new: Path, names: list[str]) -> None:
    """Move the user's entries of the previous artefact folder into the new one (a clash goes aside)."""
    for rel in names:
        src, dst = old / rel, new / rel
        if dst.exists() or dst.is_symlink():
            dst = move_aside(src)
            log.warning("%s: the new build writes a file of that name; yours is at %s", new / rel, dst)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    if names:
        log.warning("kept %d file(s) of yours from the previous folder: %s", len(names),
                    ", ".join(names[:10]) + (" ..." if len(names) > 10 else ""))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory in a temporary sibling, then swap it in place of ``path``.

    If the body raises, the previous directory (if any) is left untouched. Works for any valid path,
    ``.`` included (the swap happens in the resolved parent), and clears builds left by killed runs.
    One process at a time per target (:func:`output_lock`). What the swap does to the previous folder:
    a recsys artefact is replaced, the user's files inside it carried over; an empty one is replaced;
    anything else (reached only with ``force``) is moved aside (:func:`move_aside`).
    """
    path = resolve_path(path)
    with output_lock(path):
        remove_stale_builds(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".building",
                                    dir=path.parent))
        try:
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
            old = None
            if path.is_dir() and not path.is_symlink():
                owned = _owned(path)
                if owned is None and any(path.iterdir()):
                    move_aside(path)
                else:
                    if owned:
                        _carry_over(path, tmp, foreign_entries(path))
                    old = path.parent / f".{path.name}.{os.getpid()}.old.building"
                    os.replace(path, old)
            elif path.exists() or path.is_symlink():
                move_aside(path)
            os.replace(tmp, path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- artefact directories
def manifest_kind(directory: str | os.PathLike) -> str | None:
    """The ``kind`` recorded in a directory's manifest, or None when it holds no readable manifest."""
    try:
        man = json.loads((Path(directory) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return man.get("kind") if isinstance(man, dict) else None


def check_output_dir(path: str | os.PathLike, *, kind: str, inputs: Iterable[str | os.PathLike | None] = (),
                     force: bool = False) -> Path:
    """Check an output folder before the work: not an input or inside one, writable, and ours or ``force``.

    A new, empty, or same-kind directory may be replaced; anything else would silently delete a user's
    files, so it is an :class:`OutputError` naming the way out (``force`` moves it aside instead).
    """
    out = resolve_path(path)
    _check_inputs(path, out, inputs)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{path}: exists and is not a directory; choose another --out")
    check_writable(path, out)
    if out.is_dir():
        try:
            empty = not any(out.iterdir())
        except OSError as exc:
            raise OutputError(f"{path}: cannot read the folder ({exc.strerror or exc})") from None
    if force or not out.is_dir() or empty:
        return out
    found = manifest_kind(out)
    if found != kind:
        what = f"a {found} artefact" if found else "files that recsys did not write"
        raise OutputError(f"{path}: holds {what}; refusing to replace it with a {kind} "
                          f"(choose another --out, or pass --force to move it aside into "
                          f"{out.parent / TRASH}/)")
    return out


def write_manifest(directory: str | os.PathLike, *, kind: str, version: int,
                   settings: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Write ``manifest.json``: kind, format version, settings, and the SHA-256 of every other file."""
    d = Path(directory)
    files = {p.relative_to(d).as_posix(): sha256_file(p)
             for p in sorted(d.rglob("*")) if p.is_file() and p.relative_to(d).as_posix() != MANIFEST}
    man = {"kind": kind, "format_version": int(version), "settings": settings or {}, "files": files, **extra}
    write_json(d / MANIFEST, man)
    return man


def read_manifest(directory: str | os.PathLike, *, kind: str, version: int, what: str = "artefact",
                  error: type[RecsysError] = ModelError, verify: bool = True) -> dict[str, Any]:
    """Read and check a manifest: one clear ``error`` for a missing dir, wrong kind, version or checksum."""
    d = Path(directory)
    if not d.is_dir():
        raise error(f"{d}: {what} directory not found")
    man = read_json(d / MANIFEST, what=f"{what} manifest", error=error)
    found = man.get("kind") if isinstance(man, dict) else None
    if found != kind:
        raise error(f"{d}: not a {what} (manifest kind {found!r}, expected {kind!r})")
    if man.get("format_version") != version:
        raise error(f"{d}: {what} format version {man.get('format_version')!r} is not supported "
                    f"(this recsys reads version {version}); rebuild it with this version of recsys")
    files = man.get("files")
    if not isinstance(files, dict):
        raise error(f"{d / MANIFEST}: malformed manifest (no file list)")
    if verify:
        for name, digest in files.items():
            p = d / name
            if not p.is_file():
                raise error(f"{p}: missing from the {what} directory")
            if sha256_file(p) != digest:
                raise error(f"{p}: truncated or modified (checksum mismatch); rebuild the {what}")
    return man


@contextlib.contextmanager
def artifact_dir(path: str | os.PathLike, *, kind: str, version: int, settings: dict[str, Any] | None = None,
                 inputs: Iterable[str | os.PathLike | None] = (), force: bool = False,
                 ) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Build an artefact directory aside; on success write its manifest and swap it in atomically.

    Yields (build dir, extra manifest fields the body may fill). The one way recsys saves a model
    or an index: every artefact gets the same manifest and the same checks on load.
    """
    check_output_dir(path, kind=kind, inputs=inputs, force=force)
    extra: dict[str, Any] = {}
    with atomic_dir(path) as tmp:
        yield tmp, extra
        write_manifest(tmp, kind=kind, version=version, settings=settings, **extra)


def read_npy(path: str | os.PathLike, *, mmap: bool = False,
             error: type[RecsysError] = IndexFormatError) -> Any:
    """``np.load`` without pickles: an ``.npy`` gives its array (``mmap``: a read-only memory map), an
    ``.npz`` a dict name -> array; a missing, truncated or corrupted file is one ``error`` line."""
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise error(f"{path}: missing from index directory")
    try:
        out = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        if isinstance(out, np.lib.npyio.NpzFile):
            with out:
                return {k: out[k] for k in out.files}
        return out
    except (ValueError, OSError, EOFError) as exc:
        raise error(f"{path}: truncated or corrupted ({first_line(exc)})") from None


def read_lightgbm(path: str | os.PathLike, *, error: type[RecsysError] = ModelError) -> Any:
    """A LightGBM Booster from its text model file; a missing, cut or damaged file is one ``error``.

    LightGBM's own parser can crash the process on a cut-off file, so the text is checked for its
    end marker before the parser sees it (the manifest's checksum usually catches it earlier).
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: LightGBM model missing")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: LightGBM model is corrupted (not a text model)") from None
    if not text.startswith("tree") or "end of trees" not in text:
        raise error(f"{path}: LightGBM model is truncated or corrupted (no end-of-trees marker)")
    import lightgbm as lgb

    try:
        return lgb.Booster(model_str=text)
    except Exception as exc:  # LightGBMError on a damaged file
        raise error(f"{path}: cannot load LightGBM model ({first_line(exc, 200)})") from None


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content (cache keys follow content, not names)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Stable hash of settings (sorted JSON), used with content hashes as cache keys."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_json_default).encode()).hexdigest()
