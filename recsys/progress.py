"""Progress: a tqdm bar on a terminal, plain log lines everywhere else (files, CI, ``make demo > log``).

Every long step goes through :func:`bar`. Off a terminal it logs ``desc: n/total unit`` on the
``recsys.progress`` logger every tenth of the way (and at least every 30 s), never a carriage return;
the command line shows those lines on stderr.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any, Iterable

log = logging.getLogger("recsys.progress")


def on_terminal() -> bool:
    """True when stderr is an interactive terminal (where a redrawn bar makes sense)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class LineProgress:
    """The subset of tqdm's interface recsys uses, written as occasional log lines."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, interval: float = 30.0) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.interval = interval
        self._last_t = self._t0 = time.monotonic()
        self._last_tenth = -1 if not total else (10 * initial) // total
        self._steps = False  # a bar of named steps: each step is said by set_description

    def _emit(self) -> None:
        of = f"/{self.total:,}" if self.total else ""
        log.info("%s: %s%s %s", self.desc, f"{self.n:,}", of, self.unit)
        self._last_t = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._steps:
            return
        tenth = (10 * self.n) // self.total if self.total else -1
        if tenth > self._last_tenth or time.monotonic() - self._last_t >= self.interval:
            self._last_tenth = max(tenth, self._last_tenth)
            self._emit()

    def set_description(self, desc: str, refresh: bool = True) -> None:
        """A new step: said at once, with how far along the steps are."""
        self.desc = desc
        self._steps = True
        of = f" ({self.n + 1}/{self.total})" if self.total else ""
        log.info("%s%s at %.0f s", desc, of, time.monotonic() - self._t0)
        self._last_t = time.monotonic()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def __iter__(self):
        for x in self.iterable or ():
            yield x
            self.update()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
        enabled: bool = True, leave: bool = False, initial: int = 0) -> Any:
    """A tqdm bar on a terminal, :class:`LineProgress` elsewhere, a silent one when not ``enabled``."""
    if enabled and on_terminal():
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, initial=initial)
    if not enabled:
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=True)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial)


class StderrHandler(logging.Handler):
    """Log records as bare lines on whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if on_terminal():  # above any live bar, never inside it
                from tqdm import tqdm

                tqdm.write(line, file=sys.stderr)
            else:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
        except (ValueError, OSError):  # a closed stream: progress is not worth an error
            pass


def show_lines(name: str = "recsys.progress", *, prefix: str = "", level: int = logging.INFO) -> None:
    """Print the records of logger ``name`` as bare lines on stderr (the CLI: progress off a terminal,
    and the ``note:`` lines of recsys.io saying what ``--force`` moved aside or a rebuild kept)."""
    plog = logging.getLogger(name)
    if not any(isinstance(h, StderrHandler) for h in plog.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter(prefix + "%(message)s"))
        plog.addHandler(handler)
    plog.setLevel(min(plog.level or level, level))
    plog.propagate = False


def close_bars() -> None:
    """Close every live tqdm bar, so the next line printed (an ``error:``) starts a line of its own."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    for b in list(getattr(tqdm, "_instances", ())):
        try:
            b.close()
        except Exception:  # a bar half torn down already
            pass
