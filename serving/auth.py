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
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from anyio import to_thread
from pydantic import SecretStr
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stores.api_keys import KeyInfo, Role
from stores.records import utc_now

AuthMode = Literal["api_keys", "off"]
log = logging.getLogger("triage.auth")

# 1,000 records with typical descriptions are ~2–3 MB; 16 MiB leaves room and still bounds memory per request.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# A revoked key stops working within this many seconds (the cache's freshness).
DEFAULT_CACHE_TTL_S = 5.0
# While the key store is unreachable, keys verified within this long keep working (scoring must not stop
# because the decisions database is down); unknown keys are refused with 503.
DEFAULT_STALE_S = 3600.0
# Bounds the cache against floods of random keys; reaching it drops the cache (misses cost one query each).
DEFAULT_CACHE_ENTRIES = 10_000

HEALTH_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
DOCS_PATHS = frozenset({"/", "/docs", "/docs.json", "/schema.json"})
DOCS_PREFIXES = ("/static_content/", "/assets/")
ROUTE_ROLES: Mapping[str, Role] = {
    "/score_listings": Role.SCORER,
    "/score_accounts": Role.SCORER,
    "/prioritize": Role.SCORER,
    "/queue": Role.REVIEWER,
    "/case": Role.REVIEWER,
    "/feedback": Role.REVIEWER,
    "/reload": Role.ADMIN,
    "/status": Role.ADMIN,
}
PREFIX_ROLES: tuple[tuple[str, Role], ...] = (("/ui", Role.REVIEWER),)
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
        digest = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
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
            self._entries.clear()
        self._entries[digest] = _Entry(info, now, now + self._ttl_s)
        return info


def header_of(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (``name`` in lower case), or None."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None


def presented_key(scope: Scope) -> str | None:
    """The key from ``Authorization`` (Bearer, or Basic with the key as password) or ``X-API-Key``."""
    authorization = header_of(scope, b"authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and credentials:
            return credentials
        if scheme.lower() == "basic" and credentials:
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return decoded.partition(":")[2] or None
        return None
    return header_of(scope, b"x-api-key") or None


async def send_json(send: Send, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
    payload = json.dumps(body, ensure_ascii=True).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                   (b"cache-control", b"no-store")]
    raw_headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


class AuthMiddleware:
    """Answers 401 without a valid key and 403 when the key's role may not call the path; otherwise passes
    the request on with ``scope["state"]["principal"]`` set. ``mode="off"`` lets everything through as
    ``ANONYMOUS`` (an admin), for local development only."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: KeyVerifier | None,
        mode: AuthMode = "api_keys",
        policy: RoutePolicy = DEFAULT_POLICY,
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
        stale_s: float = DEFAULT_STALE_S,
    ) -> None:
        if mode not in ("api_keys", "off"):
            raise ValueError(f"auth mode must be 'api_keys' or 'off', got {json.dumps(mode)}")
        if mode == "api_keys" and store is None:
            raise ValueError("auth mode 'api_keys' needs a key store")
        self.app = app
        self.mode = mode
        self.policy = policy
        self.verifier = CachedKeyVerifier(store, ttl_s=cache_ttl_s, stale_s=stale_s) if store is not None else None
        if mode == "off":
            log.warning("authentication is OFF: every caller is treated as admin")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        principal, status, error = await self._authorise(scope)
        if principal is None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            headers: dict[str, str] = {}
            if status == 401:
                # Basic first: browsers sign in with the key as the password; API clients send Bearer anyway
                headers["www-authenticate"] = f"Basic {REALM}, charset=\"UTF-8\", Bearer {REALM}"
            elif status == 503:
                headers["retry-after"] = str(int(DEFAULT_CACHE_TTL_S))
            await send_json(send, status, {"error": error}, headers)
            return
        # a new dict: servers may share the lifespan state dict between requests
        scope["state"] = {**(scope.get("state") or {}), "principal": principal}
        await self.app(scope, receive, send)

    async def _authorise(self, scope: Scope) -> tuple[Principal | None, int, str]:
        path: str = scope.get("path", "")
        required = self.policy.required_role(path)
        if self.mode == "off":
            return ANONYMOUS, 200, ""
        if required is None:
            # public paths never touch the key store: health checks must not depend on the database
            return ANONYMOUS, 200, ""
        secret = presented_key(scope)
        if secret is None:
            return None, 401, "missing or invalid API key"
        try:
            principal = await self._principal(secret)
        except KeyStoreUnavailable:
            return None, 503, "authentication is temporarily unavailable, retry shortly"
        if principal is None:
            return None, 401, "missing or invalid API key"
        if not principal.role.allows(required):
            shown = path if len(path) <= MAX_PATH_IN_MESSAGE else path[:MAX_PATH_IN_MESSAGE] + "…"
            return None, 403, f"role '{principal.role.value}' may not call {shown}"
        return principal, 200, ""

    async def _principal(self, secret: str) -> Principal | None:
        assert self.verifier is not None  # mode api_keys always has one (checked in __init__)
        info = await self.verifier.verify(secret)
        return Principal.from_key(info) if info is not None else None


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
        from stores.api_keys import ApiKeyStore
        from stores.engine import make_engine
        from triage.settings import TriageSettings

        settings = TriageSettings()
        mode: AuthMode = settings.auth
        store = None
        if mode == "api_keys":
            store = ApiKeyStore(make_engine(settings.database_url), pepper=pepper_of(settings))
        super().__init__(app, store=store, mode=mode)


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
