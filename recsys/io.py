"""Reading tables by extension, atomic writes, and content hashes.

Every file recsys writes goes through a temporary sibling and ``os.replace`` so a crash never
leaves a half-written file where a good one was.
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
            if encoding not in ("utf-8", "utf-8-sig") or sep != ("\t" if kind == "tsv" else ","):
                log.warning("%s: read as %s, separated by %r", path, encoding, sep)
            df = pd.read_csv(path, sep=sep, dtype=dtype, low_memory=False, encoding=encoding)
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
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the file the permissions a plain open() would have.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` to ``path`` as UTF-8."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented, key-sorted JSON (numpy values and paths converted)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


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


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Atomically write a table; the format follows the extension (Parquet, CSV or TSV)."""
    path = Path(path)
    kind = _kind(path)
    with atomic_path(path) as tmp:
        if kind == "parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False, sep="\t" if kind == "tsv" else ",",
                      compression="gzip" if path.name.lower().endswith(".gz") else None)


MANIFEST = "manifest.json"
_BUILDING = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.building$")


def resolve_path(path: str | os.PathLike) -> Path:
    """Absolute path; a working directory that no longer exists is a clear OutputError, not a traceback."""
    try:
        return Path(path).resolve()
    except FileNotFoundError:
        raise OutputError(f"{path}: the current directory no longer exists "
                          "(an earlier build into '.' replaced it): cd into it again and retry") from None


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


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory in a temporary sibling, then swap it in place of ``path``.

    If the body raises, the previous directory (if any) is left untouched. Works for any valid path,
    ``.`` included (the swap happens in the resolved parent), and clears builds left by killed runs.
    """
    path = resolve_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".building", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.{os.getpid()}.old.building"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
    """Refuse to replace a directory that is not an artefact of ``kind`` (unless ``force``) or holds an input.

    A new, empty, or same-kind directory may be replaced; anything else would silently delete a user's
    files, so it is an :class:`OutputError` naming the way out.
    """
    out = resolve_path(path)
    for i in inputs:
        if i is None:
            continue
        src = resolve_path(i)
        if src == out or out in src.parents:
            raise OutputError(f"{path}: output directory would replace the input {i}; choose another --out")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{path}: exists and is not a directory; choose another --out")
    if force or not out.is_dir() or not any(out.iterdir()):
        return out
    found = manifest_kind(out)
    if found != kind:
        what = f"a {found} artefact" if found else "files that recsys did not write"
        raise OutputError(f"{path}: holds {what}; refusing to replace it with a {kind} "
                          f"(choose another --out, or pass --force to replace it)")
    return out


def check_output_file(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Refuse an output file that is one of the inputs (it would be overwritten before it is read)."""
    out = resolve_path(path)
    for i in inputs:
        if i is not None and resolve_path(i) == out:
            raise OutputError(f"{path}: output file is the input {i}; choose another --out")
    if out.is_dir():
        raise OutputError(f"{path}: is a directory, expected a file path")
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


def read_npy(path: str | os.PathLike, *, error: type[RecsysError] = IndexFormatError) -> Any:
    """``np.load`` without pickles: an ``.npy`` gives its array, an ``.npz`` a dict name -> array;
    a missing, truncated or corrupted file is one ``error`` line."""
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise error(f"{path}: missing from index directory")
    try:
        out = np.load(path, allow_pickle=False)
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
