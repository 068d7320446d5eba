"""The FastAPI application: JSON API under ``/api``, the page at ``/``.

Every error a client can cause is a 4xx with ``{"error": "..."}`` (and ``detail`` for validation
errors): unknown id 404, malformed JSON / wrong types / out-of-range values 422, a body over the cap
413, admin calls from a non-loopback address, cross-site or without the admin token 403. Handlers are
plain ``def`` functions: Starlette runs them in its thread pool, and each takes the current index
snapshot once (see ``state.py``).
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import RecsysError
from ..report import AUDIO_SUFFIXES, genre_probabilities
from .answers import Busy, clean, rec_dict
from .state import IndexHolder, ServeOptions, Snapshot

log = logging.getLogger("recsys.serve")
STATIC = Path(__file__).parent / "static"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
K_MAX = 100


class BatchedLog(logging.Handler):
    """Keeps records and writes them, formatted, in one write every ``every`` seconds from a thread of its
    own (at once from WARNING up; at exit, and at the app's shutdown, which uvicorn ends by re-raising the
    signal, skipping atexit). A line written in the event loop for every request delayed
    the answers: 16 clients on two engine processes, p99 126-140 ms with such lines, 97-108 ms without."""

    def __init__(self, stream=None, *, every: float = 0.5) -> None:
        import atexit
        import sys
        from collections import deque

        super().__init__()
        self.stream = stream or sys.stderr
        self.records: deque = deque()
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        self._write_lock = threading.Lock()

        def writer() -> None:
            while True:
                time.sleep(every)
                self.flush()

        threading.Thread(target=writer, name="log-writer", daemon=True).start()
        atexit.register(self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)  # deque.append: thread-safe, no lock taken in the event loop
        if record.levelno >= logging.WARNING:
            self.flush()

    def flush(self) -> None:
        with self._write_lock:
            lines = []
            while self.records:
                lines.append(self.format(self.records.popleft()) + "\n")
            if lines:
                with contextlib.suppress(Exception):  # a closed stderr must not stop the server
                    self.stream.write("".join(lines))
                    self.stream.flush()


def log_to_stderr() -> None:
    """The server's log (a line a request, reloads, errors) on stderr through :class:`BatchedLog`."""
    if log.handlers:  # set up already (this process)
        return
    log.addHandler(BatchedLog())
    log.setLevel(logging.INFO)
    log.propagate = False


class BodyTooLarge(HTTPException):
    """Raised while a request body is read past its cap (FastAPI passes HTTPException through)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body larger than {limit:,} bytes")


class LimitAndLog:
    """ASGI middleware: cap request bodies (413), log one line per request with its latency, and send that
    latency so far as ``Server-Timing: app;dur=MS`` (browser dev tools show it; a load test can tell the
    server's time from its own waiting)."""

    def __init__(self, app, *, json_limit: int, upload_limit: int) -> None:
        self.app = app
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        path = scope.get("path", "")
        limit = self.upload_limit if path == "/api/similar-audio" else self.json_limit
        status = {"code": 500}

        async def send_logged(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                dur = f"app;dur={1000 * (time.perf_counter() - t0):.2f}".encode()
                message = {**message, "headers": [*message.get("headers", ()), (b"server-timing", dur)]}
            await send(message)

        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                resp = JSONResponse({"error": f"request body larger than {limit:,} bytes"}, status_code=413)
                return await resp(scope, receive, send_logged)
            seen = {"n": 0}

            async def receive_capped():
                message = await receive()
                if message["type"] == "http.request":
                    seen["n"] += len(message.get("body", b""))
                    if seen["n"] > limit:
                        raise BodyTooLarge(limit)
                return message

            await self.app(scope, receive_capped, send_logged)
        finally:
            client = scope.get("client") or ("-", 0)
            log.info("%s %s %s %d %.1fms", client[0], scope.get("method", "-"), path, status["code"],
                     1000 * (time.perf_counter() - t0))


class EngineGate:
    """Runs engine calls off the event loop on ``threads`` threads; beyond ``queue`` waiting calls, 503."""

    def __init__(self, *, threads: int, queue: int) -> None:
        self.threads = threads
        self.queue = queue
        self._limiters: dict[int, object] = {}  # one CapacityLimiter per event loop (TestClient has its own)

    def _limiter(self):
        import asyncio

        import anyio

        loop = id(asyncio.get_running_loop())
        lim = self._limiters.get(loop)
        if lim is None:
            lim = self._limiters[loop] = anyio.CapacityLimiter(self.threads)
        return lim

    async def run(self, fn, *args):
        """``fn(*args)`` in a worker thread, or :class:`Busy` at once when the queue is full."""
        import anyio.to_thread

        lim = self._limiter()
        waiting = lim.statistics().tasks_waiting
        if lim.available_tokens == 0 and waiting >= self.queue:
            raise Busy(waiting)
        return await anyio.to_thread.run_sync(fn, *args, limiter=lim)


class PlaylistRequest(BaseModel):
    """Body of ``POST /api/playlist``."""

    model_config = ConfigDict(extra="forbid")
    seed: list[StrictStr] = Field(min_length=1, max_length=100)
    length: StrictInt = Field(default=30, ge=1, le=K_MAX)
    arc: Literal["flat", "rise", "peak", "fall"] = "flat"


class RecommendRequest(BaseModel):
    """Body of ``POST /api/recommend``."""

    model_config = ConfigDict(extra="forbid")
    recent: list[StrictStr] = Field(min_length=1, max_length=100)
    k: StrictInt = Field(default=10, ge=1, le=K_MAX)


#: Header that carries the admin token (``recsys serve`` prints the token at start-up).
ADMIN_HEADER = "X-Recsys-Admin-Token"


def admin_refusal(request: Request, token: str) -> str | None:
    """Why an admin call is refused (None: allowed): loopback client, same-origin, and the start-up token.

    A web page the user visits can POST to 127.0.0.1 but cannot read the token nor set a custom header
    without a CORS preflight, which this server never grants; its Origin is refused as well.
    """
    import secrets
    from urllib.parse import urlsplit

    host = request.client.host if request.client else ""
    if host not in LOOPBACK:
        return "admin calls are allowed from the loopback interface only"
    origin = request.headers.get("origin")
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none") or (
            origin is not None and urlsplit(origin).netloc != request.headers.get("host", "")):
        return f"cross-site admin request refused (Origin {origin or '?'})"
    given = request.headers.get(ADMIN_HEADER, "")
    if not secrets.compare_digest(given.encode(), token.encode()):
        return (f"admin calls need the {ADMIN_HEADER} header with the token `recsys serve` printed at "
                "start-up (or use kill -HUP PID)")
    return None


def create_app(options: ServeOptions | str, *, holder: IndexHolder | None = None,
               admin_token: str | None = None) -> FastAPI:
    """Build the app over an index directory (``options`` may be just the index path).

    ``admin_token`` guards ``/api/admin/*`` (a random one when None: read it from ``app.state.admin_token``).
    """
    import secrets

    if isinstance(options, str):
        options = ServeOptions(index=options)
    holder = holder or IndexHolder(options)
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if options.threads:  # handlers are sync: they run on this many threads at most
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = options.threads
        yield
        holder.close()
        for h in log.handlers:  # the last lines (BatchedLog): uvicorn ends on the re-raised signal, no atexit
            h.flush()

    app = FastAPI(title="recsys", docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json",
                  lifespan=lifespan)
    app.state.holder = holder
    gate = EngineGate(threads=options.engine_threads, queue=options.queue)
    app.state.admin_token = admin_token or secrets.token_urlsafe(24)
    report_lock = threading.Lock()  # matplotlib is not thread-safe: one report rendered at a time

    # ------------------------------------------------------------------ errors
    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException, unknown routes, 405
    async def _starlette_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        detail = [{"loc": [str(x) for x in e.get("loc", ())], "msg": e.get("msg", ""),
                   "type": e.get("type", "")} for e in exc.errors()]
        first = detail[0] if detail else {"loc": [], "msg": "invalid request", "type": ""}
        if first["type"] == "json_invalid":
            return JSONResponse({"error": "body: malformed JSON", "detail": detail}, status_code=422)
        where = ".".join(x for x in first["loc"] if x != "body") or "body"
        return JSONResponse({"error": f"{where}: {first['msg']}", "detail": detail}, status_code=422)

    @app.exception_handler(RecsysError)
    async def _recsys_error(request: Request, exc: RecsysError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):  # a bug: logged with its traceback, never sent
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal server error (see the server log)"}, status_code=500)

    def snap() -> Snapshot:
        return holder.current

    def row_or_404(s: Snapshot, track_id: str) -> int:
        r = s.row(track_id)
        if r is None:
            raise HTTPException(404, f"unknown track id {track_id!r}")
        return r

    # ------------------------------------------------------------------ API
    @app.get("/api/health")
    def health():
        s = snap()
        e = s.engine
        return {"status": "ok", "tracks": s.n, "index": str(options.index), "generation": s.generation,
                "reloads": holder.reloads, "loaded_at": s.loaded_at, "clusters": int(e.index.n_clusters),
                "blocks": list(s.block_slices), "map": s.map_method, "audio_files": len(s.audio_files),
                "similar_audio_blocks": s.clip_matrix()[0], "worker_pid": os.getpid(),
                "engine_threads": gate.threads, "queue": gate.queue,
                "engine_processes": 0 if s.pool is None else s.pool.processes}

    @app.get("/api/tracks")
    async def search(q: Annotated[str, Query(min_length=1, max_length=200)],
                     limit: Annotated[int, Query(ge=1, le=K_MAX)] = 20):
        s = snap()
        if not q.strip():
            raise HTTPException(422, "q: must contain a non-space character")

        def run():  # the index's search.sqlite (recsys/search.py): FTS5, exact titles first
            return {"query": q, "results": [_summary(s, r) for r in s.engine.search_rows(q, limit)]}

        return await gate.run(run)

    @app.get("/api/tracks/{track_id}")
    def track(track_id: Annotated[str, PathParam(max_length=500)]):
        s = snap()
        r = row_or_404(s, track_id)
        out = _summary(s, r)
        t = s.engine.tracks.frame
        for c in ("track_album_name", "release_year", "track_popularity", "source"):
            if c in t.columns:
                out[c] = clean(t.at[r, c])
        out["statistics"] = {c: {"value": clean(v[r]), "percentile": s.percentile(c, v[r])}
                             for c, v in s.stats.items()}
        out["genre_probabilities"] = genre_probabilities(s.engine, r)
        out["blocks"] = s.blocks_of(r)
        out["map"] = {"x": float(s.positions[r, 0]), "y": float(s.positions[r, 1]), "method": s.map_method}
        out["plays"] = float(s.engine.popularity[r])
        out["has_audio"] = out["track_id"] in s.audio_files
        out["report"] = f"/api/tracks/{out['track_id']}/report.png"
        return out

    @app.post("/api/recommend")
    async def recommend(body: RecommendRequest):
        s = snap()
        unknown = [t for t in body.recent if s.row(t) is None]
        if unknown:
            raise HTTPException(404, f"unknown track id(s): {', '.join(repr(u) for u in unknown[:5])}"
                                + (" ..." if len(unknown) > 5 else ""))

        recent = [t.strip() for t in body.recent]
        if s.pool is not None:  # --engine-processes: the first free engine process answers
            recs = await s.pool.recommend(recent, body.k)
        else:
            recs = await gate.run(lambda: [rec_dict(x) for x in s.engine.recommend(recent, k=body.k)])
        # already JSON-safe (rec_dict): a JSONResponse skips FastAPI's jsonable_encoder walk (0.14 ms)
        return JSONResponse({"recommendations": recs, "generation": s.generation})

    @app.post("/api/playlist")
    def playlist(body: PlaylistRequest):
        """A whole playlist after the seed tracks, ordered for smooth transitions (recsys/playlist.py)."""
        s = snap()
        unknown = [t for t in body.seed if s.row(t) is None]
        if unknown:
            raise HTTPException(404, f"unknown track id(s): {', '.join(repr(u) for u in unknown[:5])}"
                                + (" ..." if len(unknown) > 5 else ""))
        tracks = s.engine.playlist([t.strip() for t in body.seed], body.length, arc=body.arc)
        out = []
        for t in tracks:
            d = rec_dict(t)
            r = s.row(t.track_id)
            d["map"] = {"x": float(s.positions[r, 0]), "y": float(s.positions[r, 1])}
            out.append(d)
        return {"playlist": out, "note": tracks.note, "generation": s.generation}

    @app.get("/api/similar/{track_id}")
    async def similar(track_id: Annotated[str, PathParam(max_length=500)],
                      k: Annotated[int, Query(ge=1, le=K_MAX)] = 10):
        s = snap()
        row_or_404(s, track_id)

        def run():
            return {"track_id": track_id, "similar": [rec_dict(x) for x in s.engine.similar(track_id, k)]}

        return await gate.run(run)

    @app.get("/api/map")
    def map_points():
        return Response(snap().map_json(), media_type="application/json")

    @app.get("/api/tracks/{track_id}/report.png")
    def report(track_id: Annotated[str, PathParam(max_length=500)]):
        s = snap()
        r = row_or_404(s, track_id)
        tid = str(s.engine.tracks.ids[r])
        png = s.report_cache.get(tid)
        if png is None:
            from ..report import track_report

            with report_lock:
                png = track_report(s.engine, tid, audio_file=s.audio_files.get(tid),
                                   features=options.features,
                                   cnn_model=options.cnn_model)
            s.report_cache[tid] = png
            while len(s.report_cache) > 64:
                s.report_cache.popitem(last=False)
        return Response(png, media_type="image/png")

    @app.post("/api/similar-audio")
    def similar_audio(file: Annotated[UploadFile, File()], k: Annotated[int, Query(ge=1, le=K_MAX)] = 10):
        s = snap()
        names, cols, A, rows = s.clip_matrix()
        if not names:
            raise HTTPException(409, "this index has no spectral/audiostats block: build it with --features "
                                     "to compare audio")
        suffix = Path(file.filename or "clip").suffix.lower()
        if suffix and suffix not in AUDIO_SUFFIXES:
            raise HTTPException(415, f"unsupported audio file type {suffix!r} ({', '.join(AUDIO_SUFFIXES)})")
        data = file.file.read(options.max_upload_bytes + 1)
        if len(data) > options.max_upload_bytes:
            raise HTTPException(413, f"upload larger than {options.max_upload_bytes:,} bytes")
        if not data:
            raise HTTPException(422, "file: empty upload")
        q = _clip_query(s, names, data, suffix or ".wav")
        sims = A @ q
        top = np.argsort(-sims, kind="stable")[:k]
        e = s.engine
        out = []
        for j in top.tolist():
            r = int(rows[j])
            d = _summary(s, r)
            d.update(score=round(float(sims[j]), 6),
                     reasons=[f"audio blocks {'+'.join(names)} (cos {float(sims[j]):.2f})"])
            out.append(d)
        return {"blocks": names, "similar": out, "tracks_with_audio": len(rows), "index_tracks": e.n_tracks}

    @app.post("/api/admin/reload")
    def reload(request: Request):
        why = admin_refusal(request, app.state.admin_token)
        if why:
            raise HTTPException(403, why)
        t0 = time.perf_counter()
        try:
            s = holder.reload()
        except RecsysError as exc:
            raise HTTPException(409, f"reload failed, still serving the previous index: {exc}") from None
        return {"status": "reloaded", "tracks": s.n, "generation": s.generation,
                "seconds": round(time.perf_counter() - t0, 3)}

    # ------------------------------------------------------------------ page
    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)

    app.add_middleware(LimitAndLog, json_limit=options.max_json_bytes, upload_limit=options.max_upload_bytes)
    return app


def _summary(s: Snapshot, r: int) -> dict:
    t = s.engine.tracks
    return {"track_id": str(t.ids[r]), "track_name": clean(t.names[r]), "track_artist": clean(t.artists[r]),
            "parent_genre": None if s.genres[r] == "unknown" else str(s.genres[r]),
            "cluster": int(s.clusters[r])}


def _clip_query(s: Snapshot, names: list[str], data: bytes, suffix: str) -> np.ndarray:
    """Embed an uploaded clip on the audio blocks ``names`` with the index's fitted scaling."""
    import pandas as pd

    from ..audio.load import load_excerpt
    from ..blocks import get_extractor

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip{suffix}"
        path.write_bytes(data)
        try:
            y, sr = load_excerpt(path, sr=22050, seconds=30.0)
        except RecsysError as exc:  # the message names our temp path: say "the upload" instead
            msg = str(exc).replace(str(path), "the upload").replace(str(tmp), "")
            raise HTTPException(422, f"file: cannot decode audio ({msg})") from None
        except Exception as exc:  # decoder errors from soundfile / audioread / ffmpeg
            raise HTTPException(422, f"file: cannot decode audio ({type(exc).__name__})") from None
        if len(y) < sr * 0.25:
            raise HTTPException(422, "file: clip shorter than 0.25 s")
        builder = s.engine.builder
        parts = []
        for name in names:
            ext = get_extractor(name)
            try:
                feats = ext.extract(y, sr, path=path)
            except Exception as exc:  # SkipFile (silent clip) and friends: the clip is unusable
                raise HTTPException(422, f"file: {exc}") from None
            table = ext.finalize(pd.DataFrame([feats]))
            cols = builder.columns(name)
            v = np.array([float(table[c].iloc[0]) if c in table.columns and np.isscalar(table[c].iloc[0])
                          and np.isfinite(float(table[c].iloc[0])) else np.nan for c in cols],
                         dtype=np.float32)
            parts.append(builder.scale(name, v))
    q = np.concatenate(parts).astype(np.float32)
    nrm = float(np.linalg.norm(q))
    if nrm == 0:
        raise HTTPException(422, "file: the clip gives no usable audio features")
    return q / nrm
