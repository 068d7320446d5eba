"""Exceptions that mean "the user gave us something we cannot use".

The CLI prints any :class:`RecsysError` as one line and exits non-zero, without a traceback;
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class RecsysError(Exception):
    """Base class for every user-facing error."""

    exit_code = 2


class InputError(RecsysError):
    """A file or table the user supplied is missing, empty or unreadable."""


class SchemaError(InputError):
    """A table is readable but its columns or values are not what we need."""


class OutputError(InputError):
    """An output path would overwrite something that is not ours (a user's files, an input)."""


class NotFittedError(RecsysError):
    """A method that needs a built or fitted object was called before build/fit/load."""


class ModelError(RecsysError):
    """A saved model is missing, truncated, corrupted or from an incompatible version."""


class IndexFormatError(ModelError):
    """A saved index directory is incomplete or written by an incompatible version."""


class DependencyError(RecsysError):
    """An optional dependency, external tool or pretrained weight file is not available."""


class GuardError(RecsysError):
    """A computation was refused because it would blow up (memory, combinatorics)."""


class ExternalServiceError(RecsysError):
    """A remote service (e.g. the Spotify Web API) failed after retries."""


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (its type name when empty), cut to ``limit`` characters.

    Library messages can run to pages (tracebacks of C extensions, whole file paths): a user sees one line.
    """
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if limit is None else line[:limit]
