"""A fake Spotify Web API + accounts service on 127.0.0.1 for driving spotipy in tests.

It is a real HTTP server (``ThreadingHTTPServer`` in a daemon thread) that speaks the JSON
shapes of the Web API for the endpoints recsys uses, records every request it receives, and
injects faults (429 with Retry-After, 5xx, 401 on expired tokens, 403 on audio-features,
malformed bodies) on demand. Nothing here talks to any other address.
"""
from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "s3cr3t-Client-Secret-do-not-log"
USER_ID = "testuser"
USER_SCOPE = ("playlist-modify-private playlist-modify-public playlist-read-collaborative "
              "playlist-read-private user-library-read")


def make_track(i: int, *, artists: list[tuple[str, str]] | None = None, popularity: int | None = 50,
               playable: bool | None = None, local: bool = False) -> dict:
    """A full track object as the Web API returns it (ids are 22-char base62-ish)."""
    tid = f"trk{i:019d}"
    artists = artists or [(f"art{i % 7:019d}", f"Artist {i % 7}")]
    t: dict[str, Any] = {
        "id": None if local else tid,
        "uri": f"spotify:local:x:y:z:{i}" if local else f"spotify:track:{tid}",
        "type": "track",
        "name": f"Song {i}",
        "is_local": local,
        "duration_ms": 180000 + i,
        "explicit": False,
        "artists": [{"id": None if local else a, "name": n, "type": "artist",
                     "uri": f"spotify:artist:{a}"} for a, n in artists],
        "album": {"id": f"alb{i % 5:019d}", "name": f"Album {i % 5}",
                  "release_date": f"{2000 + i % 20}-01-01", "release_date_precision": "day"},
    }
    if popularity is not None:
        t["popularity"] = popularity
    if playable is not None:
        t["is_playable"] = playable
    return t


def make_features(tid: str, i: int) -> dict:
    """Audio-features object for track ``tid``, varied by ``i`` so rows differ."""
    return {"id": tid, "type": "audio_features", "danceability": 0.5 + (i % 5) / 20, "energy": 0.6,
            "key": i % 12, "loudness": -7.0, "mode": i % 2, "speechiness": 0.05, "acousticness": 0.1,
            "instrumentalness": 0.0, "liveness": 0.1, "valence": 0.4, "tempo": 120.0 + i,
            "duration_ms": 180000 + i, "time_signature": 4}


@dataclass
class Fault:
    """Answer the next ``times`` matching requests with ``status`` (and optional headers/body)."""

    method: str
    path: str  # regex matched against the path (search, not full match)
    status: int
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # dict -> JSON; str/bytes -> raw
    delay: float = 0.0  # seconds to wait before answering (timeouts)


@dataclass
class Request:
    """One request the fake received, recorded for assertions."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorization: str | None
    time: float


class FakeSpotify:
    """State and behaviour of the fake service; ``base`` is ``http://127.0.0.1:PORT``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.tracks: dict[str, dict] = {}
        self.features: dict[str, dict] = {}
        self.artists: dict[str, dict] = {}
        self.playlists: dict[str, dict] = {}  # id -> {"meta": {...}, "items": [item dicts]}
        self.saved: list[dict] = []  # saved-track items
        self.tokens: dict[str, float] = {}  # access token -> expires_at (server clock)
        self.refresh_tokens: set[str] = {"refresh-initial"}
        self.audio_features_forbidden = False
        self.batch_lookups_forbidden = False
        self.playlist_item_key = "item"  # Feb 2026 shape; "track" for the older one
        self._ids = itertools.count(1)
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # ---- setup helpers -------------------------------------------------------------------------
    @property
    def base(self) -> str:
        """Server root URL (the server must be started)."""
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        """Web API base URL to give SpotifyConfig.api_url."""
        return self.base + "/v1/"

    @property
    def auth_url(self) -> str:
        """Accounts (OAuth) base URL to give SpotifyConfig.auth_url."""
        return self.base + "/"

    def add_token(self, token: str, *, ttl: float = 3600) -> str:
        """Accept ``token`` as a valid access token for ``ttl`` seconds; returns it."""
        with self.lock:
            self.tokens[token] = time.time() + ttl
        return token

    def expire_token(self, token: str) -> None:
        """Make ``token`` expired, so the next call with it gets a 401."""
        with self.lock:
            self.tokens[token] = 0.0

    def add_tracks(self, tracks: list[dict], *, features: bool = True) -> None:
        """Register tracks (and their artists, optionally their audio features) for lookups."""
        with self.lock:
            for i, t in enumerate(tracks):
                if t.get("id"):
                    self.tracks[t["id"]] = t
                    if features:
                        self.features[t["id"]] = make_features(t["id"], i)
                for a in t.get("artists") or []:
                    if a.get("id") and a["id"] not in self.artists:
                        self.artists[a["id"]] = {"id": a["id"], "name": a.get("name"), "type": "artist",
                                                 "genres": [], "popularity": 40}

    def set_artist_genres(self, artist_id: str, genres: list[str]) -> None:
        """Set the genres the artist endpoint returns for ``artist_id``."""
        with self.lock:
            self.artists.setdefault(artist_id, {"id": artist_id, "name": artist_id, "type": "artist"})
            self.artists[artist_id]["genres"] = list(genres)

    def add_playlist(self, pid: str, name: str, items: list[Any], *, owner: str = "someone",
                     description: str = "") -> None:
        """``items`` are track dicts, ``None`` (a null item) or full item dicts with a key ``raw``."""
        wrapped = []
        for it in items:
            if isinstance(it, dict) and "raw" in it:
                wrapped.append(it["raw"])
            else:
                wrapped.append({"added_at": "2024-01-01T00:00:00Z",
                                "is_local": bool(it and it.get("is_local")), "_track": it})
        with self.lock:
            self.playlists[pid] = {"meta": {"id": pid, "name": name, "description": description,
                                            "owner": {"id": owner, "type": "user"}, "public": True,
                                            "collaborative": False, "type": "playlist",
                                            "uri": f"spotify:playlist:{pid}"},
                                   "items": wrapped}

    def save_tracks(self, tracks: list[Any]) -> None:
        """Add tracks to the user's liked songs."""
        with self.lock:
            for t in tracks:
                self.saved.append({"added_at": "2024-02-02T00:00:00Z", "track": t})

    def fail(self, method: str, path: str, status: int, *, times: int = 1,
             headers: dict[str, str] | None = None, body: Any = None, delay: float = 0.0) -> None:
        """Answer the next ``times`` requests matching ``method`` and ``path`` (regex) with ``status``."""
        with self.lock:
            self.faults.append(Fault(method.upper(), path, status, times, dict(headers or {}), body, delay))

    def calls(self, method: str | None = None, path: str | None = None) -> list[Request]:
        """Recorded requests, optionally filtered by method and path regex."""
        with self.lock:
            return [r for r in self.requests if (method is None or r.method == method)
                    and (path is None or re.search(path, r.path))]

    def playlist_track_ids(self, pid: str) -> list[str | None]:
        """Track ids of playlist ``pid`` in order (None for null items)."""
        with self.lock:
            return [(it.get("_track") or {}).get("id") for it in self.playlists[pid]["items"]]

    def user_playlists(self) -> list[dict]:
        """Metadata of the playlists owned by the fake user."""
        with self.lock:
            return [p["meta"] for p in self.playlists.values() if p["meta"]["owner"]["id"] == USER_ID]

    # ---- server lifecycle ----------------------------------------------------------------------
    def start(self) -> "FakeSpotify":
        """Serve on a free localhost port in a daemon thread; returns self."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down (safe to call twice)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # ---- request handling ----------------------------------------------------------------------
    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        ctype = h.headers.get("Content-Type", "")
        body: Any
        if "json" in ctype and raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        elif raw:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        else:
            body = None
        with self.lock:
            self.requests.append(Request(h.command, path, query, body, h.headers.get("Authorization"),
                                         time.time()))
            fault = next((f for f in self.faults if f.method == h.command and re.search(f.path, path)), None)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            default = {"error": {"status": fault.status, "message": f"injected {fault.status}"}}
            return self._send(h, fault.status, default if fault.body is None else fault.body, fault.headers)
        try:
            if path == "/api/token":
                status, payload = self._token(h, body or {})
            else:
                status, payload = self._api(h, path, query, body)
        except Exception as exc:  # a bug in the fake must be visible, not hang the client
            status, payload = 500, {"error": {"status": 500, "message": f"fake error: {exc!r}"}}
        self._send(h, status, payload)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict | None = None) -> None:
        if isinstance(payload, (dict, list)):
            data, ctype = json.dumps(payload).encode(), "application/json; charset=utf-8"
        elif isinstance(payload, bytes):
            data, ctype = payload, "text/plain"
        elif payload is None:
            data, ctype = b"", "application/json"
        else:
            data, ctype = str(payload).encode(), "text/plain"
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _new_token(self) -> str:
        return self.add_token(f"tok-{next(self._ids)}-{int(time.time() * 1000) % 100000}")

    def _token(self, h: BaseHTTPRequestHandler, body: dict) -> tuple[int, Any]:
        grant = body.get("grant_type")
        auth = h.headers.get("Authorization", "")
        basic_ok = auth == "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        pkce_ok = body.get("client_id") == CLIENT_ID
        if not (basic_ok or pkce_ok):
            return 400, {"error": "invalid_client", "error_description": "Invalid client"}
        if grant == "client_credentials":
            return 200, {"access_token": self._new_token(), "token_type": "Bearer", "expires_in": 3600}
        if grant == "refresh_token":
            if body.get("refresh_token") not in self.refresh_tokens:
                return 400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
            return 200, {"access_token": self._new_token(), "token_type": "Bearer", "expires_in": 3600,
                         "scope": USER_SCOPE}
        if grant == "authorization_code":
            rt = f"refresh-{next(self._ids)}"
            self.refresh_tokens.add(rt)
            return 200, {"access_token": self._new_token(), "token_type": "Bearer", "expires_in": 3600,
                         "refresh_token": rt, "scope": USER_SCOPE}
        return 400, {"error": "unsupported_grant_type"}

    def _page(self, items: list, query: dict, path: str, *, max_limit: int,
              default: int = 20) -> tuple[int, Any]:
        try:
            limit = int(query.get("limit", [default])[0])
            offset = int(query.get("offset", [0])[0])
        except ValueError:
            return 400, {"error": {"status": 400, "message": "Invalid limit/offset"}}
        if limit < 1 or limit > max_limit:
            return 400, {"error": {"status": 400, "message": "Invalid limit"}}
        page = items[offset:offset + limit]
        nxt = (f"{self.base}{path}?offset={offset + limit}&limit={limit}"
               if offset + limit < len(items) else None)
        prev = f"{self.base}{path}?offset={max(0, offset - limit)}&limit={limit}" if offset > 0 else None
        return 200, {"href": f"{self.base}{path}?offset={offset}&limit={limit}", "items": page,
                     "limit": limit, "offset": offset, "total": len(items), "next": nxt, "previous": prev}

    def _api(self, h: BaseHTTPRequestHandler, path: str, query: dict, body: Any) -> tuple[int, Any]:
        auth = h.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        with self.lock:
            exp = self.tokens.get(token or "")
        if exp is None:
            return 401, {"error": {"status": 401, "message": "Invalid access token"}}
        if exp < time.time():
            return 401, {"error": {"status": 401, "message": "The access token expired"}}
        m = h.command
        p = path.rstrip("/")
        ids = [x for x in ",".join(query.get("ids", [])).split(",") if x]
        with self.lock:
            if m == "GET" and p == "/v1/me":
                return 200, {"id": USER_ID, "display_name": "Test User", "type": "user"}
            if m == "GET" and p == "/v1/me/tracks":
                return self._page(self.saved, query, "/v1/me/tracks", max_limit=50)
            if m == "GET" and p == "/v1/me/playlists":
                return self._page(self.user_playlists(), query, "/v1/me/playlists", max_limit=50)
            if m == "POST" and p == "/v1/me/playlists":
                if not isinstance(body, dict) or not body.get("name"):
                    return 400, {"error": {"status": 400, "message": "Missing name"}}
                pid = f"pl{next(self._ids):020d}"
                self.add_playlist(pid, body["name"], [], owner=USER_ID,
                                  description=body.get("description", ""))
                self.playlists[pid]["meta"]["public"] = bool(body.get("public", True))
                return 201, self._playlist_obj(pid)
            if p in ("/v1/tracks", "/v1/artists", "/v1/audio-features"):
                limit = 100 if p == "/v1/audio-features" else 50
                if len(ids) > limit:
                    return 400, {"error": {"status": 400, "message": "Too many ids requested"}}
                if p == "/v1/audio-features":
                    if self.audio_features_forbidden:
                        return 403, {"error": {"status": 403, "message": "Forbidden"}}
                    return 200, {"audio_features": [self.features.get(i) for i in ids]}
                if self.batch_lookups_forbidden:
                    return 403, {"error": {"status": 403, "message": "Forbidden"}}
                if p == "/v1/tracks":
                    return 200, {"tracks": [self.tracks.get(i) for i in ids]}
                return 200, {"artists": [self.artists.get(i) for i in ids]}
            mm = re.fullmatch(r"/v1/artists/([^/]+)", p)
            if m == "GET" and mm:
                a = self.artists.get(mm.group(1))
                return (200, a) if a else (404, {"error": {"status": 404, "message": "Resource not found"}})
            mm = re.fullmatch(r"/v1/playlists/([^/]+)(/items)?", p)
            if mm:
                pid, sub = mm.group(1), mm.group(2)
                if pid not in self.playlists:
                    return 404, {"error": {"status": 404, "message": "Resource not found"}}
                pl = self.playlists[pid]
                if sub is None and m == "GET":
                    return 200, self._playlist_obj(pid)
                if sub is None and m == "PUT":
                    if not isinstance(body, dict):
                        return 400, {"error": {"status": 400, "message": "Bad body"}}
                    for k in ("name", "description", "public"):
                        if k in body:
                            pl["meta"][k] = body[k]
                    return 200, None
                if sub and m == "GET":
                    items = [self._item_out(it) for it in pl["items"]]
                    return self._page(items, query, f"/v1/playlists/{pid}/items", max_limit=100)
                if sub and m == "POST":
                    if pl["meta"]["owner"]["id"] != USER_ID:
                        return 403, {"error": {"status": 403, "message": "Forbidden"}}
                    uris = body if isinstance(body, list) else (body or {}).get("uris", [])
                    if not uris or len(uris) > 100:
                        return 400, {"error": {"status": 400, "message": "Invalid number of items"}}
                    for u in uris:
                        tid = u.rsplit(":", 1)[-1]
                        pl["items"].append({"added_at": "2026-01-01T00:00:00Z", "is_local": False,
                                            "_track": self.tracks.get(tid, {"id": tid, "uri": u,
                                                                            "type": "track"})})
                    return 201, {"snapshot_id": f"snap{next(self._ids)}"}
                if sub and m == "DELETE":
                    uris = {x.get("uri") for x in (body or {}).get("items", [])}
                    pl["items"] = [it for it in pl["items"]
                                   if (it.get("_track") or {}).get("uri") not in uris]
                    return 200, {"snapshot_id": f"snap{next(self._ids)}"}
        return 404, {"error": {"status": 404, "message": f"Service not found: {m} {path}"}}

    def _item_out(self, it: dict) -> dict:
        if "_track" not in it:  # a raw (possibly malformed) item supplied by a test
            return it
        out = {k: v for k, v in it.items() if k != "_track"}
        out[self.playlist_item_key] = it["_track"]
        return out

    def _playlist_obj(self, pid: str) -> dict:
        pl = self.playlists[pid]
        return {**pl["meta"], "items": {"href": f"{self.base}/v1/playlists/{pid}/items",
                                        "total": len(pl["items"])},
                "snapshot_id": f"s{len(pl['items'])}"}


def write_user_token(config_dir, fake: FakeSpotify, *, token: str = "user-token-1", ttl: float = 3600,
                     refresh: str = "refresh-initial") -> str:
    """Inject a user token the way `recsys spotify login` would have cached it."""
    import os
    from pathlib import Path

    from recsys.spotify.client import USER_SCOPE as SCOPE

    if ttl > 0:
        fake.add_token(token)
    path = Path(config_dir) / "spotify-user-token.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                                "refresh_token": refresh, "scope": " ".join(SCOPE),
                                "expires_at": int(time.time() + ttl)}))
    os.chmod(path, 0o600)
    return token
