"""``recsys serve --workers N``: N uvicorn processes on one port over one memory-mapped index.

The parent binds one listening socket per worker on the same port (``SO_REUSEPORT``) and supervises
(uvicorn's ``Multiprocess``: a dead worker is replaced, on its socket). The kernel spreads new
connections over the sockets. On one shared socket it does not: asyncio accepts every pending
connection when the socket wakes it, so whichever worker wakes first took a whole burst of keep-alive
connections (measured: 15 or 16 of 16 clients on one worker), and the other worker idled.
Each worker opens the index read-only and memory-mapped (``ServeOptions.mmap``), so the embeddings
and the FAISS index are shared through the page cache instead of copied per process. A reload (in
any worker through ``POST /api/admin/reload``, or SIGHUP to the parent) increments a generation
counter in a small file; every worker polls it and reloads aside exactly as a single server does,
so each worker swaps its snapshot between requests and no request fails.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import tempfile
import threading
from pathlib import Path

from .state import IndexHolder, ServeOptions, Snapshot

log = logging.getLogger("recsys.serve")
OPTIONS_ENV = "RECSYS_SERVE_OPTIONS"
GENERATION_ENV = "RECSYS_SERVE_GENERATION_FILE"
TOKEN_ENV = "RECSYS_SERVE_ADMIN_TOKEN"
POLL_SECONDS = 0.2


def read_generation(path: Path) -> int:
    """The shared generation counter (0 when the file is empty or missing)."""
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def bump_generation(path: Path) -> int:
    """Increment the shared counter under an exclusive lock; returns the new value."""
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        text = fh.read().strip()
        value = (int(text) if text.isdigit() else 0) + 1
        fh.seek(0)
        fh.truncate()
        fh.write(str(value))
        fh.flush()
        return value


class SharedHolder(IndexHolder):
    """An :class:`IndexHolder` whose reloads reach every worker sharing ``generation_file``."""

    def __init__(self, options: ServeOptions, generation_file: str | Path) -> None:
        self.generation_file = Path(generation_file)
        self._seen = read_generation(self.generation_file)
        self._announce = threading.Lock()  # a reload here and its announcement, as one step for the watcher
        super().__init__(options)
        if self._seen:  # a worker started (or restarted) after reloads: say so in its generation
            self.current.generation = self._seen
        threading.Thread(target=self._watch, name="reload-watch", daemon=True).start()

    def _swap(self, generation: int) -> Snapshot:
        with self._lock:
            snap = self._load(generation)
            self.current = snap
            self.reloads += 1
        log.info("worker %d reloaded %s: %d tracks (generation %d, %.2f s)", os.getpid(), self.options.index,
                 snap.n, snap.generation, snap.load_seconds)
        return snap

    def reload(self) -> Snapshot:
        """Reload here, then announce the new generation to the other workers."""
        with self._announce:
            snap = self._swap(self.current.generation + 1)  # fails (and announces nothing) on a broken index
            self._seen = bump_generation(self.generation_file)
            snap.generation = self._seen
        return snap

    def _watch(self) -> None:
        import time

        while True:
            time.sleep(POLL_SECONDS)
            with self._announce:
                g = read_generation(self.generation_file)
                if g <= self._seen:
                    continue
                self._seen = g
                try:
                    self._swap(g)
                except Exception as exc:  # keep serving the old index, say why
                    log.error("worker %d: reload to generation %d failed, still serving the previous "
                              "index: %s", os.getpid(), g, exc)


def app_from_env():
    """uvicorn factory run in each worker: options and the generation file come from the environment."""
    from .app import create_app, log_to_stderr

    opts = ServeOptions(**json.loads(os.environ[OPTIONS_ENV]))
    log_to_stderr()
    return create_app(opts, holder=SharedHolder(opts, os.environ[GENERATION_ENV]),
                      admin_token=os.environ.get(TOKEN_ENV))


def run_workers(options: ServeOptions, *, sockets: list, workers: int, admin_token: str | None) -> None:
    """Serve ``workers`` processes until SIGINT/SIGTERM, worker i on ``sockets[i]`` (one socket: all share
    it)."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess
    from uvicorn.supervisors.multiprocess import Process

    state = Path(tempfile.mkdtemp(prefix="recsys-serve-"))
    gen = state / "generation"
    gen.write_text("0")
    os.environ[OPTIONS_ENV] = json.dumps(dataclasses.asdict(dataclasses.replace(options, mmap=True)))
    os.environ[GENERATION_ENV] = str(gen)
    if admin_token:
        os.environ[TOKEN_ENV] = admin_token
    host, port = sockets[0].getsockname()[:2]
    config = uvicorn.Config("recsys.serve.workers:app_from_env", factory=True, host=host, port=port,
                            workers=workers, **options.uvicorn_settings())

    class Supervisor(Multiprocess):
        """uvicorn's supervisor, but worker i always runs on socket i: a replaced worker takes over the
        connections waiting on its predecessor's socket."""

        def spawn(self, i: int) -> Process:
            process = Process(self.config, [sockets[i % len(sockets)]])
            process.start()
            return process

        def init_processes(self) -> None:
            self.processes = [self.spawn(i) for i in range(self.processes_num)]

        def keep_subprocess_alive(self) -> None:  # uvicorn's, with the worker's own socket
            if self.should_exit.is_set():
                return
            for i, process in enumerate(self.processes):
                if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                    continue
                process.kill()
                process.join()
                if process.exitcode == STARTUP_FAILURE:  # broken before serving: it would fail again
                    log.error("worker %s failed to start, stopping", process.pid)
                    self.should_exit.set()
                    return
                if self.should_exit.is_set():
                    return
                log.info("worker %s died, starting another on its socket", process.pid)
                self.processes[i] = self.spawn(i)

        def handle_hup(self) -> None:  # reload every worker in place instead of restarting them
            g = bump_generation(gen)
            log.info("SIGHUP: reloading every worker (generation %d)", g)

        def handle_ttin(self) -> None:  # the sockets are fixed at start: so is the number of workers
            log.info("SIGTTIN ignored: restart with another --workers")

        handle_ttou = handle_ttin

    try:
        Supervisor(config, sockets=sockets).run()
    finally:
        for sock in sockets:
            sock.close()
        for f in state.iterdir():
            f.unlink()
        state.rmdir()
