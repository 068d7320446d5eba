"""spotipy client setup: credentials, endpoints, auth managers, retries, timeouts, redaction.

Every Web API call recsys makes goes through :class:`SpotifyClient.call`, which turns spotipy
and requests failures into one-line :class:`~recsys.errors.ExternalServiceError` messages and
refreshes an access token the server says has expired. Retries live in the HTTP session
(urllib3 ``Retry``): 429 waits for ``Retry-After`` (refused outright beyond a cap), 5xx backs
off exponentially for a bounded number of tries, and every request carries a timeout.
"""
from __future__ import annotations

import email.utils
import logging
import os
import re
import stat
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from ..errors import DependencyError, ExternalServiceError, InputError, first_line
from ..io import read_json, write_text

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_API_URL = "https://api.spotify.com/v1/"
DEFAULT_AUTH_URL = "https://accounts.spotify.com/"
#: Scopes the user flow asks for: read liked songs and playlists, write the genre playlists.
USER_SCOPE = ("user-library-read", "playlist-read-private", "playlist-read-collaborative",
              "playlist-modify-private", "playlist-modify-public")
ID_VARS = ("RECSYS_SPOTIFY_CLIENT_ID", "SPOTIPY_CLIENT_ID", "SPOTIFY_CLIENT_ID")
SECRET_VARS = ("RECSYS_SPOTIFY_CLIENT_SECRET", "SPOTIPY_CLIENT_SECRET", "SPOTIFY_CLIENT_SECRET")
REDIRECT_VARS = ("RECSYS_SPOTIFY_REDIRECT_URI", "SPOTIPY_REDIRECT_URI")


@dataclass
class SpotifyConfig:
    """Tunables of the Spotify connection (TOML section ``[spotify]``; env vars override URLs)."""

    api_url: str = DEFAULT_API_URL
    auth_url: str = DEFAULT_AUTH_URL
    redirect_uri: str = "http://127.0.0.1:8888/callback"
    requests_timeout: float = 10.0  # seconds, every request (API and token endpoint)
    retries: int = 5  # total tries after the first for 429/5xx/connection errors
    backoff_factor: float = 0.5  # seconds; urllib3 doubles it per consecutive failure
    backoff_max: float = 30.0  # cap on one backoff sleep
    max_retry_after: float = 120.0  # a 429 asking to wait longer than this fails instead
    config_dir: str | None = None  # token cache + playlist state; default ~/.config/recsys
    open_browser: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, base: "SpotifyConfig | None" = None,
                 **overrides: Any) -> "SpotifyConfig":
        """``base`` (defaults or a TOML section), then ``RECSYS_SPOTIFY_*`` variables, then ``overrides``."""
        env = dict(os.environ if env is None else env)
        cfg = base or cls()
        pick = {"api_url": "RECSYS_SPOTIFY_API_URL", "auth_url": "RECSYS_SPOTIFY_AUTH_URL",
                "config_dir": "RECSYS_CONFIG_DIR"}
        if env.get("RECSYS_SPOTIFY_OPEN_BROWSER"):
            cfg = replace(cfg, open_browser=env["RECSYS_SPOTIFY_OPEN_BROWSER"].strip().lower()
                          not in ("0", "false", "no"))
        for name, var in pick.items():
            if env.get(var):
                cfg = replace(cfg, **{name: env[var]})
        redirect = _first(env, REDIRECT_VARS)
        if redirect:
            cfg = replace(cfg, redirect_uri=redirect)
        for name, var, conv in (("requests_timeout", "RECSYS_SPOTIFY_TIMEOUT", float),
                                ("retries", "RECSYS_SPOTIFY_RETRIES", int),
                                ("backoff_factor", "RECSYS_SPOTIFY_BACKOFF", float),
                                ("max_retry_after", "RECSYS_SPOTIFY_MAX_RETRY_AFTER", float)):
            if env.get(var):
                try:
                    cfg = replace(cfg, **{name: conv(env[var])})
                except ValueError:
                    raise InputError(f"{var}={env[var]!r} is not a number") from None
        return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def api_prefix(self) -> str:
        """Web API base URL with a trailing slash (spotipy joins paths onto it)."""
        return self.api_url if self.api_url.endswith("/") else self.api_url + "/"

    @property
    def token_url(self) -> str:
        """OAuth token endpoint."""
        return self.auth_url.rstrip("/") + "/api/token"

    @property
    def authorize_url(self) -> str:
        """OAuth authorization (browser login) endpoint."""
        return self.auth_url.rstrip("/") + "/authorize"

    @property
    def directory(self) -> Path:
        """Directory for tokens and playlist state: ``config_dir``, else ``$XDG_CONFIG_HOME/recsys``."""
        if self.config_dir:
            return Path(self.config_dir).expanduser()
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "recsys"

    @property
    def user_token_path(self) -> Path:
        """Cached user (login) token file."""
        return self.directory / "spotify-user-token.json"

    @property
    def app_token_path(self) -> Path:
        """Cached app-only (client credentials) token file."""
        return self.directory / "spotify-app-token.json"

    @property
    def playlist_state_path(self) -> Path:
        """File recording the playlists recsys created, so re-runs update instead of duplicating."""
        return self.directory / "spotify-playlists.json"


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((env[n] for n in names if env.get(n)), None)


@dataclass(repr=False)
class Credentials:
    """Client id and (optional) secret; the secret never appears in repr, str or logs."""

    client_id: str
    client_secret: str | None = field(default=None)

    def __repr__(self) -> str:
        return (f"Credentials(client_id={self.client_id!r}, "
                f"client_secret={'***' if self.client_secret else None})")

    __str__ = __repr__

    @classmethod
    def load(cls, *, env: Mapping[str, str] | None = None, dotenv: str | os.PathLike | None = ".env",
             require_secret: bool = False) -> "Credentials":
        """From the environment, else a ``.env`` file (the environment wins; os.environ untouched)."""
        file_values: dict[str, str] = {}
        if dotenv is not None and Path(dotenv).is_file():
            from dotenv import dotenv_values

            file_values = {k: v for k, v in dotenv_values(dotenv).items() if v}
        env_values = {k: v for k, v in dict(os.environ if env is None else env).items() if v}
        cid = _first(env_values, ID_VARS) or _first(file_values, ID_VARS)
        secret = _first(env_values, SECRET_VARS) or _first(file_values, SECRET_VARS)
        if not cid:
            raise InputError(f"no Spotify client id: set {ID_VARS[0]} (or {ID_VARS[1]}) "
                             "in the environment or .env")
        if require_secret and not secret:
            raise InputError(f"no Spotify client secret: set {SECRET_VARS[0]} (or {SECRET_VARS[1]}) "
                             "in the environment or .env (needed for app-only access)")
        register_secret(secret)
        return cls(cid, secret)


# ---- keeping secrets out of logs -----------------------------------------------------------------
_SECRETS: set[str] = set()
_PATTERNS = (
    (re.compile(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ***"),
    (re.compile(r"""(['"]?(?:access_token|refresh_token|client_secret|code_verifier|code)['"]?\s*[:=]\s*['"]?)"""
                r"""[^'",&\s}]+"""), r"\1***"),
)
_LOGGERS = ("spotipy", "spotipy.client", "spotipy.oauth2", "spotipy.util", "spotipy.cache_handler",
            "urllib3.connectionpool", "recsys.spotify")


def register_secret(value: str | None) -> None:
    """Remember a secret (and its base64 forms inside Basic headers) so logs never show it."""
    if value and len(value) >= 6:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """Replace tokens, Authorization headers and known secrets in ``text`` by ``***``."""
    for rx, sub in _PATTERNS:
        text = rx.sub(sub, text)
    for s in _SECRETS:
        text = text.replace(s, "***")
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message through :func:`redact` (spotipy logs headers at debug).

    spotipy also logs every HTTP error at ERROR level, with the whole URL; recsys reports those
    itself in one line (or handles them: a 403 on audio-features is expected), so they are kept
    only as debug records.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the message; demote spotipy's HTTP-error records to debug (dropped unless enabled)."""
        try:
            msg = record.getMessage()
        except Exception:  # a broken format string is not ours to fix; drop its args
            msg = str(record.msg)
        if record.name.startswith("spotipy") and record.levelno >= logging.ERROR and (
                msg.startswith("HTTP Error for") or msg.startswith("Max Retries")):
            if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
                return False
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.msg, record.args = redact(msg), None
        return True


def install_redaction() -> None:
    """Attach :class:`RedactingFilter` once to every logger that could carry credentials."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


# ---- HTTP sessions with bounded retries ----------------------------------------------------------
def _retry_class(retry_post: bool = False):
    from spotipy.util import Retry as SpotipyRetry
    from urllib3.exceptions import MaxRetryError, ResponseError

    class CappedRetry(SpotipyRetry):
        """spotipy's Retry that refuses to sleep through a Retry-After longer than the cap.

        urllib3 would clamp such a wait and retry into the same 429; failing with the wait in the
        message is more useful (Spotify sends hours-long Retry-After when an app is throttled).
        POST is retried only on 429/503 (not applied server-side), never on other 5xx, so adding
        items to a playlist cannot be duplicated by a retry.
        """

        def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
            if method == "POST" and not retry_post and status_code not in (429, 503):
                return False
            return super().is_retry(method, status_code, has_retry_after)

        def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
            if response is not None and response.status in (429, 503):
                wait = _parse_retry_after(response.headers.get("Retry-After"))
                if wait is not None and wait > self.retry_after_max:
                    raise MaxRetryError(_pool, url, ResponseError(
                        f"Retry-After {wait:.0f} s exceeds the {self.retry_after_max:.0f} s cap"))
            return super().increment(method, url, response=response, error=error, _pool=_pool,
                                     _stacktrace=_stacktrace)

    return CappedRetry


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    parsed = email.utils.parsedate_tz(value)
    return None if parsed is None else max(0.0, email.utils.mktime_tz(parsed) - time.time())


def make_session(config: SpotifyConfig, *, methods: tuple[str, ...] = ("GET", "POST", "PUT", "DELETE"),
                 retry_post: bool = False):
    """A requests Session whose adapter retries 429 (Retry-After) and 5xx with capped backoff.

    ``retry_post`` also retries POST on 5xx: right for the token endpoint, wrong for adding items.
    """
    import requests

    retry = _retry_class(retry_post)(
        total=config.retries, connect=config.retries, read=False, status=config.retries,
        allowed_methods=frozenset(methods), status_forcelist=(429, 500, 502, 503, 504),
        backoff_factor=config.backoff_factor, backoff_max=config.backoff_max,
        retry_after_max=config.max_retry_after, respect_retry_after_header=True,
    )
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# ---- token caches ----------------------------------------------------------------------------
def _cache_handler_class():
    from spotipy.cache_handler import CacheHandler

    class AtomicTokenCache(CacheHandler):
        """Token cache as a JSON file readable only by the user, replaced atomically."""

        def __init__(self, path: Path) -> None:
            self.path = Path(path)

        def get_cached_token(self) -> dict | None:
            if not self.path.exists():
                return None
            try:
                data = read_json(self.path, what="Spotify token cache")
            except InputError:
                log.warning("%s: token cache unreadable, ignoring it", self.path)
                return None
            return data if isinstance(data, dict) and data.get("access_token") else None

        def save_token_to_cache(self, token_info: dict) -> None:
            import json

            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text(self.path, json.dumps(token_info))
            try:
                os.chmod(self.path, stat.S_IRUSR | stat.S_IWUSR)
            except OSError:
                pass

    return AtomicTokenCache


def token_cache(path: str | os.PathLike):
    """spotipy cache handler that stores the token at ``path`` atomically and owner-readable only."""
    return _cache_handler_class()(Path(path))


# ---- auth managers ---------------------------------------------------------------------------
def app_auth(config: SpotifyConfig, creds: Credentials):
    """Client-credentials manager (public data only) pointed at ``config.token_url``."""
    from spotipy.oauth2 import SpotifyClientCredentials

    if not creds.client_secret:
        raise InputError(f"app-only Spotify access needs a client secret ({SECRET_VARS[0]})")
    mgr = SpotifyClientCredentials(client_id=creds.client_id, client_secret=creds.client_secret,
                                   requests_session=make_session(config, retry_post=True),
                                   requests_timeout=config.requests_timeout,
                                   cache_handler=token_cache(config.app_token_path))
    mgr.OAUTH_TOKEN_URL = config.token_url  # instance attribute shadows the class constant
    return mgr


def user_auth(config: SpotifyConfig, creds: Credentials, *, interactive: bool = False):
    """User flow: authorization code with a local redirect if a secret is set, PKCE otherwise.

    A non-interactive manager refuses to start the browser flow (it would wait forever for a
    redirect in a batch job) and says to run ``recsys spotify login``.
    """
    from spotipy.oauth2 import SpotifyOAuth, SpotifyPKCE

    common = dict(client_id=creds.client_id, redirect_uri=config.redirect_uri, scope=" ".join(USER_SCOPE),
                  cache_handler=token_cache(config.user_token_path), open_browser=config.open_browser,
                  requests_timeout=config.requests_timeout,
                  requests_session=make_session(config, retry_post=True))
    if creds.client_secret:
        mgr = SpotifyOAuth(client_secret=creds.client_secret, **common)
    else:
        mgr = SpotifyPKCE(**common)
    mgr.OAUTH_TOKEN_URL = config.token_url
    mgr.OAUTH_AUTHORIZE_URL = config.authorize_url
    if not interactive:
        def refuse(*args: Any, **kwargs: Any) -> str:
            raise InputError("Spotify needs you to log in again (no valid cached token for the required "
                             "scopes): run `recsys spotify login`")

        mgr.get_auth_response = refuse  # SpotifyOAuth
        mgr._get_auth_response = refuse  # SpotifyPKCE
    return mgr


def has_user_token(config: SpotifyConfig) -> bool:
    """Whether a user token is cached (``recsys spotify login`` has been run)."""
    return config.user_token_path.exists()


# ---- the client --------------------------------------------------------------------------------
class SpotifyClient:
    """A spotipy ``Spotify`` plus error mapping and one forced token refresh on 401."""

    def __init__(self, sp: Any, auth_manager: Any, config: SpotifyConfig, *, kind: str) -> None:
        self.sp = sp
        self.auth_manager = auth_manager
        self.config = config
        self.kind = kind  # "app" or "user"

    @classmethod
    def connect(cls, config: SpotifyConfig | None = None, *, auth: str = "auto",
                creds: Credentials | None = None, dotenv: str | os.PathLike | None = ".env",
                interactive: bool = False) -> "SpotifyClient":
        """Build a client: ``auth`` is ``app`` (client credentials), ``user`` (OAuth/PKCE) or ``auto``
        (user when a user token is cached, else app). Only ``interactive`` clients may start the
        browser login; others fail with a one-line hint instead of waiting for a redirect."""
        try:
            import spotipy
        except ImportError:  # pragma: no cover - spotipy is a core dependency
            raise DependencyError("spotipy is not installed (pip install spotipy)") from None
        install_redaction()
        config = config or SpotifyConfig.from_env()
        if auth == "auto":
            auth = "user" if has_user_token(config) else "app"
        if auth not in ("app", "user"):
            raise InputError(f"unknown Spotify auth mode {auth!r} (use app, user or auto)")
        if auth == "user" and not interactive and not has_user_token(config):
            raise InputError("not logged in to Spotify: run `recsys spotify login` first "
                             f"(no cached user token in {config.user_token_path})")
        creds = creds or Credentials.load(dotenv=dotenv, require_secret=(auth == "app"))
        register_secret(creds.client_secret)
        mgr = app_auth(config, creds) if auth == "app" else user_auth(config, creds, interactive=interactive)
        sp = spotipy.Spotify(auth_manager=mgr, requests_session=make_session(config),
                             requests_timeout=config.requests_timeout, retries=config.retries,
                             status_retries=config.retries, backoff_factor=config.backoff_factor)
        sp.prefix = config.api_prefix
        log.debug("Spotify client: auth=%s api=%s accounts=%s", auth, config.api_prefix, config.auth_url)
        return cls(sp, mgr, config, kind=auth)

    def refresh(self) -> None:
        """Force a new access token (after the API answered 401 to a token we thought valid)."""
        mgr = self.auth_manager
        try:
            if hasattr(mgr, "refresh_access_token"):
                info = mgr.cache_handler.get_cached_token()
                if not info or not info.get("refresh_token"):
                    raise ExternalServiceError("Spotify rejected the access token and there is no refresh "
                                               "token: run `recsys spotify login` again")
                mgr.refresh_access_token(info["refresh_token"])
            else:
                mgr.get_access_token(as_dict=False, check_cache=False)
        except ExternalServiceError:
            raise
        except Exception as exc:
            raise ExternalServiceError(f"Spotify token refresh failed ({_describe(exc)})") from None

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` (a spotipy method); map failures to ExternalServiceError.

        A 401 triggers one token refresh and one more try. Other HTTP errors raise
        :class:`SpotifyHTTPError` (an ExternalServiceError carrying ``status``) so callers can
        decide to skip (404 playlist) or fall back (403 audio-features).
        """
        from spotipy.exceptions import SpotifyException, SpotifyOauthError

        import requests

        for attempt in (1, 2):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    return fn(*args, **kwargs)
            except SpotifyException as exc:
                if exc.http_status == 401 and attempt == 1:
                    log.info("%s: access token rejected (401), refreshing it once", what)
                    self.refresh()
                    continue
                status, message = exc.http_status, _exc_message(exc)
                gave_up = re.search(r"too many (\d{3}) error responses", message)
                if "Max Retries" in message and gave_up:  # spotipy reports every exhausted retry as 429
                    status = int(gave_up.group(1))
                    message = f"gave up after {self.config.retries} retries ({gave_up.group(0)})"
                raise SpotifyHTTPError(what, status, message) from None
            except SpotifyOauthError as exc:
                raise ExternalServiceError(f"{what}: Spotify authorization failed "
                                           f"({redact(str(exc))})") from None
            except requests.exceptions.Timeout:
                raise ExternalServiceError(f"{what}: Spotify did not answer within "
                                           f"{self.config.requests_timeout:g} s") from None
            except requests.exceptions.RequestException as exc:
                raise ExternalServiceError(f"{what}: cannot reach Spotify ({_describe(exc)})") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def current_user_id(self) -> str:
        """Spotify id of the logged-in user (raises if Spotify returns none)."""
        me = self.call("current user", self.sp.current_user)
        if not isinstance(me, dict) or not me.get("id"):
            raise ExternalServiceError("current user: Spotify returned no user id")
        return str(me["id"])


class SpotifyHTTPError(ExternalServiceError):
    """A Web API call failed with an HTTP status (after retries where retrying made sense)."""

    def __init__(self, what: str, status: int, message: str) -> None:
        self.what, self.status, self.detail = what, status, message
        hint = {401: "re-authorise with `recsys spotify login`", 403: "this app has no access",
                404: "not found or not visible to this app",
                429: "rate limited; try again later"}.get(status, "")
        super().__init__(f"{what}: Spotify answered {status} ({message})" + (f"; {hint}" if hint else ""))


def _exc_message(exc: Any) -> str:
    msg = str(getattr(exc, "msg", "") or "").strip()
    msg = msg.split("\n")[-1].strip() if msg else ""
    reason = getattr(exc, "reason", None)
    if reason and str(reason) not in msg:
        msg = f"{msg} {reason}".strip()
    return redact(msg or "no message")


def _describe(exc: BaseException) -> str:
    return redact(first_line(exc))[:300]
