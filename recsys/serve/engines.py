"""Engine processes for ``recsys serve --engine-processes N``: the HTTP process hands each recommend call
to whichever of N processes is free; each holds the index memory-mapped, read-only.

Why: with ``--workers N`` each process runs its event loop and its engine thread under one GIL, and a
keep-alive connection stays with the process that accepted it. So an uneven split of the clients, or the
engine thread holding the GIL while answers wait to be sent, stretches the tail. Here the HTTP process
only parses and answers, and the next call goes to the first free engine process. 16 clients on the demo
index, same runs: p99 89-103 ms against 127-169 ms with ``--workers 2`` (docs/serve.md, round 7).
"""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import multiprocessing as mp
import os
import threading
import time

from .answers import Busy, rec_dict

log = logging.getLogger("recsys.serve")

_engine = None  # in an engine process: its Engine (set by _start)


def _start(index: str, server: int) -> None:
    """An engine process's start: one BLAS/OpenMP thread, the index opened memory-mapped, and a watch that
    ends this process when the server process is gone (even killed, with no chance to stop it)."""
    global _engine
    from .. import threads
    from ..engine import Engine

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(server, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # a process with that id exists (only ours can, while we run)
                pass

    threading.Thread(target=watch, name="server-watch", daemon=True).start()
    threads.configure()
    _engine = Engine.load(index, mmap=True)


def _pid(delay: float) -> int:
    time.sleep(delay)
    return os.getpid()


def _recommend(recent: list[str], k: int) -> list[dict]:
    return [rec_dict(r) for r in _engine.recommend(recent, k=k)]


class EnginePool:
    """N engine processes over one index directory; a process that dies is replaced with the whole set.

    ``recommend`` answers as ``Engine.recommend`` in the HTTP process would (the same index, the same
    code); more than ``processes + queue`` calls in flight: 503 (``Busy``)."""

    #: seconds a replaced pool keeps answering calls already given to it (``close_later``)
    grace: float = 30.0

    def __init__(self, index: str, processes: int, *, queue: int = 32) -> None:
        self.index = str(index)
        self.processes = max(1, int(processes))
        self.queue = max(0, int(queue))
        self._lock = threading.Lock()
        self._replacing = threading.Lock()
        self._inflight = 0
        self._executor = self._spawn()

    def _spawn(self) -> cf.ProcessPoolExecutor:
        """A new set of processes, every one with the index loaded before it is used."""
        from ..errors import RecsysError

        # spawned: a fresh interpreter, no copy of this process's threads, locks or OpenMP state
        ex = cf.ProcessPoolExecutor(self.processes, mp_context=mp.get_context("spawn"), initializer=_start,
                                    initargs=(self.index, os.getpid()))
        seen: set[int] = set()
        try:  # short tasks until each process has answered one (processes start when tasks arrive)
            for _ in range(50):
                seen |= set(ex.map(_pid, [0.05] * (2 * self.processes)))
                if len(seen) >= self.processes:
                    break
        except cf.process.BrokenProcessPool:
            ex.shutdown(wait=False, cancel_futures=True)
            raise RecsysError(f"{self.index}: the engine processes could not load the index") from None
        return ex

    def pids(self) -> list[int]:
        """Process ids of the current engine processes."""
        return sorted(self._executor._processes)  # the executor's own table of its processes

    async def recommend(self, recent: list[str], k: int) -> list[dict]:
        """``Engine.recommend(recent, k)`` as JSON-ready dicts, in the first free engine process."""
        with self._lock:
            if self._inflight >= self.processes + self.queue:
                raise Busy(self._inflight - self.processes)
            self._inflight += 1
        try:
            for attempt in range(2):
                ex = self._executor
                try:
                    fut = ex.submit(_recommend, recent, k)
                except cf.process.BrokenProcessPool:
                    fut = None
                except RuntimeError:  # shut down: a reload retired this set after the call took its snapshot
                    raise Busy(0) from None
                if fut is not None:
                    try:
                        return await asyncio.wrap_future(fut)
                    except cf.process.BrokenProcessPool:  # a process died (killed, out of memory)
                        if attempt:
                            raise
                log.error("an engine process died: starting a new set and asking again")
                await asyncio.to_thread(self._replace, ex)
            raise cf.process.BrokenProcessPool("the engine processes keep dying")
        finally:
            with self._lock:
                self._inflight -= 1

    def _replace(self, broken: cf.ProcessPoolExecutor) -> None:
        with self._replacing:  # one new set at a time; the calls that saw the same death wait for it
            if self._executor is not broken:  # another call replaced it already
                return
            self._executor = self._spawn()
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the processes once the calls given to them are answered (and wait for them to exit)."""
        self._executor.shutdown(wait=True)

    def close_later(self) -> None:
        """:meth:`close` after ``grace`` seconds: calls that took the old snapshot still get answers."""
        t = threading.Timer(self.grace, self.close)
        t.daemon = True
        t.start()
