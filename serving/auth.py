"""API-key authentication, role checks and a request size limit, as pure ASGI middleware.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: no extra task and no response re-streaming per
request, and the ``scope`` we annotate is the very one the endpoints see. Register on the BentoML service
(first registered = outermost, so authentication runs before the body is read):

    TriageService.add_asgi_middleware(TriageAuthMiddleware)
    TriageService.add_asgi_middleware(BodyLimitMiddleware, max_bytes=DEFAULT_MAX_BODY_BYTES)

Keys are read from ``Authorization: Bearer <key>``, ``X-API-Key: <key>`` or ``Authorization: Basic`` with the
key as the password (what a browser sends after its login prompt, so the reviewer page works without code).
The authenticated ``Principal`` is put in ``scope["state"]["principal"]``; endpoints read it with
``principal_of(ctx.request)``. The key itself is never logged, stored or echoed. See docs/security.md.

Basic credentials are a browser sign-in, sent by the browser on its own: they are accepted only on the
reviewer page and the endpoints it calls (``BROWSER_PATHS``), and never on a cross-site state-changing
request (``serving/csrf.py``). Failed authentications are limited per client network and per key id
(``serving/ratelimit.py``): past the limit, keys this worker has not seen verify get 429 with
``Retry-After``, while keys it has verified keep working, so an attacker cannot lock their holders out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from anyio import to_thread
from pydantic import SecretStr
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.asgi import header_of, send_json
from serving.csrf import cross_site_reason, is_state_changing, normalise_origin
from serving.ratelimit import FailureLimiter, client_network, retry_after_header
from serving.schemas import score_route
from stores.api_keys import ApiKeyStore, KeyInfo, Role, key_id_of
from stores.engine import make_engine
from stores.records import utc_now
from triage.entities import ENTITIES
from triage.settings import TriageSettings

AuthMode = Literal["api_keys", "off"]
log = logging.getLogger("triage.auth")

# 1,000 records with typical descriptions are ~2–3 MB; 16 MiB leaves room and still bounds memory per request.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# A revoked key stops working within this many seconds (the cache's freshness).
DEFAULT_CACHE_TTL_S = 5.0
# While the key store is unreachable, keys verified within this long keep working (scoring must not stop
# because the decisions database is down); unknown keys are refused with 503.
DEFAULT_STALE_S = 3600.0
# Bounds the cache against floods of random keys; reaching it drops the invalid entries first.
DEFAULT_CACHE_ENTRIES = 10_000
# A key verified within this long is let through to the store even while its client network or key id is
# over the failed-authentication limit: the limit must not lock out a key's legitimate holder.
DEFAULT_KNOWN_GOOD_S = 24 * 3600.0

HEALTH_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
DOCS_PATHS = frozenset({"/", "/docs", "/docs.json", "/schema.json"})
DOCS_PREFIXES = ("/static_content/", "/assets/")
ROUTE_ROLES: Mapping[str, Role] = {
    # one scoring route per scored entity type of the registry
    **{score_route(entity): Role.SCORER for entity in ENTITIES.scored_names()},
    "/prioritize": Role.SCORER,
    "/queue": Role.REVIEWER,
    "/case": Role.REVIEWER,
    "/feedback": Role.REVIEWER,
    "/reload": Role.ADMIN,
    "/status": Role.ADMIN,
}
PREFIX_ROLES: tuple[tuple[str, Role], ...] = (("/ui", Role.REVIEWER),)
# The reviewer page and the endpoints it calls: the only paths that accept Basic credentials (a browser sign-in).
BROWSER_PATHS: tuple[str, ...] = ("/ui", "/queue", "/case", "/feedback")
MAX_PATH_IN_MESSAGE = 200
REALM = 'realm="triage"'


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: what endpoints record in the audit log."""

    key_id: str
    name: str
    role: Role

    @classmethod
    def from_key(cls, info: KeyInfo) -> Principal:
        return cls(key_id=info.key_id, name=info.name, role=info.role)


# With authentication off every caller is this principal, so the audit log still says so explicitly.
ANONYMOUS = Principal(key_id="anonymous", name="auth off", role=Role.ADMIN)


def principal_of(connection: HTTPConnection | Scope) -> Principal:
    """The caller of a request (``ctx.request`` in a BentoML endpoint, or the raw scope); ANONYMOUS when
    the middleware is not installed (tests of the service without it)."""
    scope = connection.scope if isinstance(connection, HTTPConnection) else connection
    principal = (scope.get("state") or {}).get("principal")
    return principal if isinstance(principal, Principal) else ANONYMOUS


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """Which role each path needs. Paths not listed need ``admin`` (deny by default)."""

    routes: Mapping[str, Role]
    prefixes: tuple[tuple[str, Role], ...] = PREFIX_ROLES
    public: frozenset[str] = HEALTH_PATHS
    public_docs: bool = True
    browser_paths: tuple[str, ...] = BROWSER_PATHS

    def accepts_basic(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.browser_paths)

    def required_role(self, path: str) -> Role | None:
        """None: no key needed."""
        if path in self.public:
            return None
        if self.public_docs and (path in DOCS_PATHS or path.startswith(DOCS_PREFIXES)):
            return None
        if path in self.routes:
            return self.routes[path]
        for prefix, role in self.prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return role
        return Role.ADMIN


DEFAULT_POLICY = RoutePolicy(routes=ROUTE_ROLES)


class KeyVerifier(Protocol):
    """What the middleware needs from a key store (``stores.api_keys.ApiKeyStore`` is one)."""

    def verify(self, secret: str) -> KeyInfo | None: ...


class KeyStoreUnavailable(RuntimeError):
    """The key store could not be asked and there is no recent answer for this key."""


@dataclass(slots=True)
class _Entry:
    info: KeyInfo | None
    verified_at: float
    fresh_until: float


class CachedKeyVerifier:
    """Verifies keys against the store at most once per ``ttl_s`` per key (in a worker thread: the store is
    synchronous SQLAlchemy), so revocations and rotations take effect within ``ttl_s`` with no restart.

    Cached by sha256 of the key, so the cache holds no usable secrets. When the store fails, a key verified
    within ``stale_s`` keeps its last answer (and the store is retried once per ``ttl_s``, not per request).
    """

    def __init__(
        self,
        store: KeyVerifier,
        *,
        ttl_s: float = DEFAULT_CACHE_TTL_S,
        stale_s: float = DEFAULT_STALE_S,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._stale_s = stale_s
        self._max_entries = max_entries
        self._clock = clock
        self._wall_clock = wall_clock
        self._entries: dict[str, _Entry] = {}

    def _still_valid(self, info: KeyInfo | None) -> KeyInfo | None:
        # a rotated-out secret's grace may end between two store checks
        if info is not None and info.expires_at is not None and info.expires_at <= self._wall_clock():
            return None
        return info

    async def verify(self, secret: str) -> KeyInfo | None:
        digest = _digest(secret)
        now = self._clock()
        entry = self._entries.get(digest)
        if entry is not None and now < entry.fresh_until:
            return self._still_valid(entry.info)
        try:
            info = await to_thread.run_sync(self._store.verify, secret)
        except Exception as exc:
            if entry is not None and now - entry.verified_at < self._stale_s:
                entry.fresh_until = now + self._ttl_s
                log.warning("key store unreachable (%s); using the answer of %.0f s ago for key %s",
                            type(exc).__name__, now - entry.verified_at,
                            entry.info.key_id if entry.info else "(invalid)")
                return self._still_valid(entry.info)
            raise KeyStoreUnavailable(f"key store unreachable: {type(exc).__name__}") from exc
        if len(self._entries) >= self._max_entries:
            # a flood of unknown keys must not evict the keys in use (there are few of those)
            self._entries = {d: e for d, e in self._entries.items() if e.info is not None}
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
        self._entries[digest] = _Entry(info, now, now + self._ttl_s)
        return info

    def known_valid(self, secret: str, within_s: float = DEFAULT_KNOWN_GOOD_S) -> bool:
        """Whether this secret verified as valid within ``within_s`` (no store query; the answer to let it be
        checked against the store although its client is over the failed-authentication limit)."""
        entry = self._entries.get(_digest(secret))
        return entry is not None and entry.info is not None and self._clock() - entry.verified_at < within_s


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Credentials:
    scheme: Literal["bearer", "basic", "api_key"]
    secret: str  # "" for Basic credentials that do not decode: presented, and wrong


def presented_credentials(scope: Scope) -> Credentials | None:
    """The key from ``Authorization`` (Bearer, or Basic with the key as password) or ``X-API-Key``; None when
    no key was presented."""
    authorization = header_of(scope, b"authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and credentials:
            return Credentials("bearer", credentials)
        if scheme.lower() == "basic" and credentials:
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return Credentials("basic", "")
            return Credentials("basic", decoded.partition(":")[2])
        return None
    api_key = header_of(scope, b"x-api-key")
    return Credentials("api_key", api_key) if api_key else None


def presented_key(scope: Scope) -> str | None:
    credentials = presented_credentials(scope)
    return credentials.secret or None if credentials is not None else None


def _key_id_name(secret: str) -> str | None:
    """The limiter's name for the key id inside a presented secret (public; only well-formed ids count)."""
    key_id = key_id_of(secret)
    return f"key:{key_id}" if key_id is not None and len(key_id) == 12 and key_id.isalnum() else None


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    error: str
    headers: Mapping[str, str]


class AuthMiddleware:
    """Answers 401 without a valid key, 403 when the key's role may not call the path or a browser sign-in
    comes cross-site, 429 past the failed-authentication limit; otherwise passes the request on with
    ``scope["state"]["principal"]`` set. ``mode="off"`` lets everything through as ``ANONYMOUS`` (an admin),
    for local development only."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: KeyVerifier | None,
        mode: AuthMode = "api_keys",
        policy: RoutePolicy = DEFAULT_POLICY,
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
        stale_s: float = DEFAULT_STALE_S,
        limiter: FailureLimiter | None = None,
        trusted_origins: Collection[str] = (),
    ) -> None:
        if mode not in ("api_keys", "off"):
            raise ValueError(f"auth mode must be 'api_keys' or 'off', got {json.dumps(mode)}")
        if mode == "api_keys" and store is None:
            raise ValueError("auth mode 'api_keys' needs a key store")
        self.app = app
        self.mode = mode
        self.policy = policy
        self.verifier = CachedKeyVerifier(store, ttl_s=cache_ttl_s, stale_s=stale_s) if store is not None else None
        self.limiter = limiter if limiter is not None else FailureLimiter()
        self.trusted_origins = frozenset(_trusted(origin) for origin in trusted_origins)
        if mode == "off":
            log.warning("authentication is OFF: every caller is treated as admin")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        principal = await self._authorise(scope)
        if isinstance(principal, Refusal):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await send_json(send, principal.status, {"error": principal.error}, principal.headers)
            return
        # a new dict: servers may share the lifespan state dict between requests
        scope["state"] = {**(scope.get("state") or {}), "principal": principal}
        await self.app(scope, receive, send)

    def _unauthorised(self, path: str, error: str = "missing or invalid API key") -> Refusal:
        # Basic first where the page is: browsers sign in with the key as the password; elsewhere only Bearer,
        # so a browser opening an API path shows no login prompt
        challenge = f"Basic {REALM}, charset=\"UTF-8\", Bearer {REALM}" if self.policy.accepts_basic(path) else (
            f"Bearer {REALM}")
        return Refusal(401, error, {"www-authenticate": challenge})

    async def _authorise(self, scope: Scope) -> Principal | Refusal:
        path: str = scope.get("path", "")
        required = self.policy.required_role(path)
        if self.mode == "off":
            return ANONYMOUS
        if required is None:
            # public paths never touch the key store: health checks must not depend on the database
            return ANONYMOUS
        credentials = presented_credentials(scope)
        if credentials is None:
            return self._unauthorised(path)
        if credentials.scheme == "basic":
            if not self.policy.accepts_basic(path):
                return self._unauthorised(path, "Basic credentials are accepted only by the reviewer page and the "
                                          "endpoints it calls; send Authorization: Bearer <key> or X-API-Key")
            reason = cross_site_reason(scope, self.trusted_origins) if is_state_changing(scope) else None
            if reason is not None:
                log.info("refused a cross-site %s %s with browser credentials (%s)", scope.get("method"),
                         path[:MAX_PATH_IN_MESSAGE], reason)
                return Refusal(403, f"cross-site request refused ({reason}): a browser sign-in is accepted only "
                               "from this service's own pages", {})
        names = [client_network(scope.get("client"))]
        key_name = _key_id_name(credentials.secret)
        if key_name is not None:
            names.append(key_name)
        assert self.verifier is not None  # mode api_keys always has one (checked in __init__)
        if not self.verifier.known_valid(credentials.secret):
            wait = self.limiter.retry_after(*names)
            if wait > 0:
                return Refusal(429, f"too many failed authentications; retry after {retry_after_header(wait)} s",
                               {"retry-after": retry_after_header(wait)})
        try:
            principal = await self._principal(credentials.secret)
        except KeyStoreUnavailable:
            return Refusal(503, "authentication is temporarily unavailable, retry shortly",
                           {"retry-after": str(int(DEFAULT_CACHE_TTL_S))})
        if principal is None:
            for name in self.limiter.failed(*names):
                log.warning("failed authentications over the limit for %s: unknown keys get 429 for up to %.0f s",
                            name, self.limiter.window_s)
            return self._unauthorised(path)
        if not principal.role.allows(required):
            shown = path if len(path) <= MAX_PATH_IN_MESSAGE else path[:MAX_PATH_IN_MESSAGE] + "…"
            return Refusal(403, f"role '{principal.role.value}' may not call {shown}", {})
        return principal

    async def _principal(self, secret: str) -> Principal | None:
        assert self.verifier is not None  # mode api_keys always has one (checked in __init__)
        info = await self.verifier.verify(secret)
        return Principal.from_key(info) if info is not None else None


def _trusted(origin: str) -> str:
    normalised = normalise_origin(origin)
    if normalised is None:
        raise ValueError(f"not an origin (scheme://host[:port]): {json.dumps(origin)}")
    return normalised


def pepper_of(settings: object) -> bytes | None:
    """``TRIAGE_API_KEY_PEPPER`` as bytes (a ``SecretStr`` or str setting; absent until it is declared)."""
    pepper = getattr(settings, "api_key_pepper", None)  # any settings-like object (tests pass plain ones)
    if isinstance(pepper, SecretStr):
        pepper = pepper.get_secret_value()
    return pepper.encode() if isinstance(pepper, str) and pepper else None


class TriageAuthMiddleware(AuthMiddleware):
    """``AuthMiddleware`` configured from ``TriageSettings`` (mode, store URL, pepper). Built by Starlette
    when the app starts in each worker, so nothing is read or connected at import time."""

    def __init__(self, app: ASGIApp) -> None:
        settings = TriageSettings()
        mode: AuthMode = settings.auth
        store = None
        if mode == "api_keys":
            store = ApiKeyStore(make_engine(settings.database_url), pepper=pepper_of(settings))
        limiter, trusted_origins = edge_settings(settings)
        super().__init__(app, store=store, mode=mode, limiter=limiter, trusted_origins=trusted_origins)


def edge_settings(settings: TriageSettings) -> tuple[FailureLimiter, list[str]]:
    """The failed-authentication limiter and the trusted origins from the settings (docs/security.md):
    `TRIAGE_AUTH_MAX_FAILURES` failures per `TRIAGE_AUTH_FAILURE_WINDOW_SECONDS` per client network and per key
    id, in each worker; `TRIAGE_TRUSTED_ORIGINS`, origins a browser sign-in is also accepted from."""
    limiter = FailureLimiter(max_failures=settings.auth_max_failures, window_s=settings.auth_failure_window_seconds)
    return limiter, list(settings.trusted_origins)


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 for request bodies over ``max_bytes``: at once from ``Content-Length``; for chunked bodies the
    body is read (up to the limit) before the app sees any of it, so the app never handles a partial body."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.app = app
        self.max_bytes = max_bytes

    async def _too_large(self, send: Send) -> None:
        await send_json(send, 413, {"error": f"request body larger than {self.max_bytes} bytes",
                                    "limit_bytes": self.max_bytes}, {"connection": "close"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header_of(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_json(send, 400, {"error": "invalid Content-Length header"})
                return
            if int(declared) > self.max_bytes:
                await self._too_large(send)
                return
            # the server enforces Content-Length framing, so the body cannot exceed what was declared
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_limited(receive)
        except _BodyTooLarge:
            await self._too_large(send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read_limited(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # the client is gone; the app answers nobody
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
