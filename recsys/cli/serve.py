"""Serving commands: ``recsys serve`` (HTTP API + page) and ``recsys report`` (one track's PNG report)."""
from __future__ import annotations

import click

from .common import FORCE_FILE


def register(main: click.Group) -> None:
    """Add ``serve`` and ``report`` to the top-level ``recsys`` group."""

    @main.command("serve")
    @click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False),
                  help="Index directory.")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to bind (loopback by default; anything else exposes the API to the network).")
    @click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
                  help="TCP port to listen on (0 = any free port).")
    @click.option("--features", type=click.Path(file_okay=False),
                  help="Features dir the index was built from.")
    @click.option("--audio-dir", type=click.Path(file_okay=False),
                  help="Audio files (spectrogram/chroma in reports).")
    @click.option("--cnn-model", type=click.Path(file_okay=False),
                  help="Chunk CNN model dir (reports: CNN over time).")
    @click.option("--max-upload-mb", type=click.FloatRange(0.1, 1024), default=20.0, show_default=True,
                  help="Largest clip accepted by POST /api/similar-audio.")
    @click.option("--threads", type=click.IntRange(1, 256), default=None,
                  help="Threads running requests (default: Starlette's 40).")
    @click.option("--admin-token", envvar="RECSYS_ADMIN_TOKEN", default=None, metavar="TOKEN",
                  help="Token POST /api/admin/reload must send in X-Recsys-Admin-Token "
                       "(env RECSYS_ADMIN_TOKEN; default: a random one, printed at start-up).")
    @click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
                  help="Server processes sharing the port and one memory-mapped index.")
    @click.option("--engine-processes", type=click.IntRange(0, 64), default=0, show_default=True,
                  help="Processes answering POST /api/recommend, each with the index memory-mapped; this "
                       "process only parses and answers (a steadier tail than --workers; not with it).")
    @click.option("--engine-threads", type=click.IntRange(1, 64), default=None,
                  help="Threads per process running recommend/search/similar at once "
                       "[default: cores / workers, at least 1].")
    @click.option("--queue", type=click.IntRange(0, 10_000), default=32, show_default=True,
                  help="Requests waiting for an engine thread beyond which the answer is 503 + Retry-After.")
    @click.option("--keep-alive", type=click.FloatRange(1, 3600), default=75.0, show_default=True,
                  help="Seconds an idle keep-alive connection stays open (longer than clients keep theirs).")
    def serve(index_dir, host, port, features, audio_dir, cnn_model, max_upload_mb, threads, admin_token,
              workers, engine_processes, engine_threads, queue, keep_alive):
        """Serve the JSON API and the web page; SIGHUP or POST /api/admin/reload (loopback, token) reloads."""
        import logging
        import os
        import secrets
        import signal
        import socket
        import threading

        import uvicorn

        from ..serve import IndexHolder, ServeOptions, create_app
        from ..serve.app import log_to_stderr

        if engine_processes and workers > 1:
            raise click.UsageError("--engine-processes and --workers are two ways to use the cores: "
                                   "choose one")
        if engine_threads is None:  # one engine thread per core in all: more only interleave under the GIL
            engine_threads = max(1, (os.cpu_count() or 1) // workers)
        # a taken port fails first ("error: port P is in use", exit 2); --workers: one socket per worker,
        # where SO_REUSEPORT exists (elsewhere, Windows, the workers share one)
        socks = bind_sockets(host, port, count=workers if hasattr(socket, "SO_REUSEPORT") else 1)
        sock = socks[0]
        try:
            log_to_stderr()
            opts = ServeOptions(index=index_dir, features=features, audio_dir=audio_dir, cnn_model=cnn_model,
                                max_upload_bytes=int(max_upload_mb * 1024 * 1024), threads=threads,
                                engine_threads=engine_threads, queue=queue, mmap=workers > 1,
                                keep_alive=keep_alive, engine_processes=engine_processes)
            holder = IndexHolder(opts)  # a broken index fails here, before announcing: "error: ...", exit 2
            token = admin_token or secrets.token_urlsafe(24)
            app = None if workers > 1 else create_app(opts, holder=holder, admin_token=token)
        except BaseException:
            for s in socks:
                s.close()
            raise

        if workers > 1:  # N processes, one socket each; SIGHUP / any worker's reload reaches them all
            from ..serve.workers import run_workers

            bound = sock.getsockname()[1]
            click.echo(f"serving {index_dir} ({holder.current.n:,} tracks) on http://{host}:{bound}/ with "
                       f"{workers} worker processes", err=True)
            click.echo(f"reload: kill -HUP {os.getpid()}, or curl -X POST -H 'X-Recsys-Admin-Token: {token}' "
                       f"http://{host}:{bound}/api/admin/reload", err=True)
            del holder
            return run_workers(opts, sockets=socks, workers=workers, admin_token=token)

        def on_hup(signum, frame):  # reload aside in a thread; requests keep using the old snapshot meanwhile
            def run():
                try:
                    holder.reload()
                except Exception as exc:  # keep serving the old index, say why
                    logging.getLogger("recsys.serve").error("reload on SIGHUP failed, still serving the "
                                                            "previous index: %s", exc)
            threading.Thread(target=run, name="reload", daemon=True).start()

        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, on_hup)
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(f"warning: binding {host}: the API (no authentication) is reachable from the network",
                       err=True)
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        also = f" with {engine_processes} engine processes" if engine_processes else ""
        click.echo(f"serving {index_dir} ({holder.current.n:,} tracks) on http://{shown}:{bound}/{also}",
                   err=True)
        click.echo(f"reload: kill -HUP {os.getpid()}, or curl -X POST -H 'X-Recsys-Admin-Token: {token}' "
                   f"http://{shown}:{bound}/api/admin/reload", err=True)
        config = uvicorn.Config(app, host=host, port=bound, **opts.uvicorn_settings())
        uvicorn.Server(config).run(sockets=[sock])

    @main.command("report")
    @click.argument("track")
    @click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False),
                  help="Index directory written by `recsys build-index`.")
    @click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
    @click.option("--features", type=click.Path(file_okay=False), help="Features dir (accompaniment block).")
    @click.option("--audio-dir", type=click.Path(file_okay=False),
                  help="Audio files: spectrogram, chroma, CNN.")
    @click.option("--cnn-model", type=click.Path(file_okay=False), help="Chunk CNN model dir.")
    @click.option("--force", is_flag=True, help=FORCE_FILE)
    def report(track, index_dir, out, features, audio_dir, cnn_model, force):
        """Write one track's PNG report: statistics against the catalogue, genres, map; audio when found."""
        from ..engine import Engine
        from ..io import check_output_file, write_bytes
        from ..report import audio_file_map, track_report

        check_output_file(out, inputs=[index_dir, features, audio_dir, cnn_model], force=force)
        eng = Engine.load(index_dir)
        if track not in eng.tracks:
            from ..errors import InputError

            raise InputError(f"unknown track id {track!r} (not in {index_dir})")
        audio = audio_file_map([track], features=features, audio_dir=audio_dir).get(track)
        if audio_dir and audio is None:
            click.echo(f"warning: no audio file for {track} in {audio_dir}: report without audio panels",
                       err=True)
        write_bytes(out, track_report(eng, track, audio_file=audio, features=features, cnn_model=cnn_model),
                    output=True, force=force)
        click.echo(f"{out}: report of {track}" + (f" with audio from {audio}" if audio else ""))


def bind_sockets(host: str, port: int, *, count: int = 1) -> list:
    """``count`` listening TCP sockets on host:port, or one ``error:`` line (port in use, no such address).

    More than one: a ``SO_REUSEPORT`` group, one socket per worker process, over which the kernel spreads
    new connections. The port is first bound without it, so a server already there, of any kind (another
    group too), is still "in use"."""
    import errno
    import socket

    from ..errors import InputError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, kind, proto, _, addr = infos[0]
    socks: list = []

    def listening(reuse_port: bool):
        sock = socket.socket(family, kind, proto)
        socks.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restarts reuse TIME_WAIT, not live ports
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        return sock

    try:
        first = listening(False)
        if count > 1:  # the port is free (and chosen, for port 0): bind it again as a SO_REUSEPORT group
            addr = first.getsockname()
            first.close()
            socks.clear()
            for _ in range(count):
                listening(True)
        for sock in socks:
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in socks:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} is in use (on {host}): stop the other server or pass another "
                             "--port (0 = any free port)") from None
        if exc.errno == errno.EACCES:
            raise InputError(f"port {port}: permission denied (ports below 1024 need root); "
                             "pass another --port") from None
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return socks
