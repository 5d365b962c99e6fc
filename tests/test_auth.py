"""API keys and roles: the key store on SQLite and PostgreSQL, the middleware over a tiny Starlette app, and
one end-to-end check against the real BentoML service with the middleware registered.

Also home of the helpers the other end-to-end files use to send keys (`make_keys`, `auth_headers`) and to
start a server with authentication on (`start_authed_server`) whether or not `serving/service.py` has
registered the middleware yet."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.auth import (
    ANONYMOUS,
    AuthMiddleware,
    AuthMode,
    BodyLimitMiddleware,
    CachedKeyVerifier,
    KeyStoreUnavailable,
    principal_of,
)
from stores.api_keys import ApiKeyStore, KeyInfo, Role, UnknownKey
from stores.engine import make_engine
from stores.migrate import upgrade
from stores.schema import api_keys
from tests.conftest import RunningServer, TrainedStore, start_bento_server, stop_server

pytest_plugins = ["tests.conftest_stores"]

# Registers the middleware exactly as docs/security.md tells serving/service.py to, unless it already has.
# -- helpers for the end-to-end files ---------------------------------------------------------------
def make_keys(store_url: str) -> dict[Role, str]:
    """One fresh key per role in the store a server uses."""
    engine = make_engine(store_url)
    try:
        upgrade(engine)
        store = ApiKeyStore(engine)
        return {role: store.create(role, f"test-{role.value}")[1] for role in Role}
    finally:
        engine.dispose()


def auth_headers(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def start_authed_server(env_extra: dict[str, str], log: Path, timeout: float = 120.0,
                        wait_ready: bool = True) -> RunningServer:
    """The real service with auth on (the service registers the auth and body-limit middleware itself)."""
    return start_bento_server({"TRIAGE_AUTH": "api_keys"} | env_extra, log, timeout=timeout, wait_ready=wait_ready)


# -- the key store ----------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_created_key_verifies_with_its_role_and_is_stored_hashed(engine: Engine) -> None:
    store = ApiKeyStore(engine)
    key_id, secret = store.create("reviewer", "alice")
    info = store.verify(secret)
    assert info is not None and (info.key_id, info.name, info.role) == (key_id, "alice", Role.REVIEWER)
    assert secret.startswith(f"tk_{key_id}_") and len(secret) > 40
    with engine.connect() as connection:
        rows = [dict(r) for r in connection.execute(sa.select(api_keys)).mappings()]
    assert len(rows) == 1 and secret not in str(rows) and secret.split("_")[-1] not in str(rows)
    assert store.verify(secret + "x") is None and store.verify("") is None and store.verify("tk_" + "a" * 500) is None
    assert store.verify(secret.replace(key_id, "000000000000")) is None


def test_revoke_is_immediate_in_the_store_and_idempotent(engine: Engine) -> None:
    store = ApiKeyStore(engine)
    key_id, secret = store.create("scorer", "queue-system")
    assert store.revoke(key_id) == 1
    assert store.verify(secret) is None
    assert store.revoke(key_id) == 0
    with pytest.raises(UnknownKey):
        store.revoke("nope")
    [listed] = store.list()
    assert listed.revoked_at is not None and listed.active_secrets == 0
    assert store.list(include_revoked=False) == []


def test_rotation_keeps_the_old_secret_for_the_grace_period(engine: Engine) -> None:
    clock = Clock()
    store = ApiKeyStore(engine, clock=clock)
    key_id, old = store.create("admin", "ops")
    new = store.rotate(key_id, grace=timedelta(minutes=10))
    assert new != old and new.startswith(f"tk_{key_id}_")
    old_info, new_info = store.verify(old), store.verify(new)
    assert old_info is not None and old_info.expires_at == clock.now + timedelta(minutes=10)
    assert new_info is not None and new_info.role is Role.ADMIN and new_info.expires_at is None
    assert [k.active_secrets for k in store.list()] == [2]
    clock.now += timedelta(minutes=11)
    assert store.verify(old) is None and store.verify(new) is not None
    newest = store.rotate(key_id)  # no grace: the previous secret stops at once
    assert store.verify(new) is None and store.verify(newest) is not None
    store.revoke(key_id)
    assert store.verify(newest) is None
    with pytest.raises(UnknownKey):
        store.rotate(key_id)


def test_pepper_changes_the_stored_hash_and_bad_roles_are_refused(engine: Engine) -> None:
    plain, peppered = ApiKeyStore(engine), ApiKeyStore(engine, pepper=b"server-side-secret")
    _, secret = peppered.create("scorer", "peppered")
    assert peppered.verify(secret) is not None and plain.verify(secret) is None
    with pytest.raises(ValueError):
        plain.create("superuser", "x")
    with pytest.raises(ValueError):
        plain.create("scorer", "")


# -- the middleware over a tiny app -----------------------------------------------------------------
class FakeStore:
    """A key store whose answers and availability the test controls."""

    def __init__(self) -> None:
        self.keys: dict[str, KeyInfo] = {}
        self.down = False
        self.calls = 0

    def add(self, secret: str, role: Role) -> None:
        self.keys[secret] = KeyInfo(key_id=f"id-{role.value}", name=f"{role.value} key", role=role,
                                    created_at=datetime.now(UTC), revoked_at=None)

    def verify(self, secret: str) -> KeyInfo | None:
        self.calls += 1
        if self.down:
            raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))
        return self.keys.get(secret)


async def whoami(request: Request) -> JSONResponse:
    principal = principal_of(request)
    return JSONResponse({"key_id": principal.key_id, "role": principal.role.value,
                         "bytes": len(await request.body())})


def tiny_app(store: FakeStore | None, mode: AuthMode = "api_keys", cache_ttl_s: float = 5.0) -> TestClient:
    paths = ["/score_listings", "/feedback", "/status", "/livez", "/metrics", "/docs.json", "/ui/index.html",
             "/unlisted"]
    app = Starlette(routes=[Route(p, whoami, methods=["GET", "POST"]) for p in paths])
    app.add_middleware(BodyLimitMiddleware, max_bytes=1000)
    app.add_middleware(AuthMiddleware, store=store, mode=mode, cache_ttl_s=cache_ttl_s)  # added last = outermost
    return TestClient(app)


@pytest.fixture
def keys() -> FakeStore:
    store = FakeStore()
    for role in Role:
        store.add(f"tk_{role.value}_secret", role)
    return store


def test_missing_or_invalid_key_is_401_with_a_challenge(keys: FakeStore) -> None:
    client = tiny_app(keys)
    # Basic credentials are a browser sign-in: tried on a path of the reviewer page (tests/test_edges.py: elsewhere)
    for path, headers in (("/score_listings", {}), ("/score_listings", {"Authorization": "Bearer tk_wrong"}),
                          ("/score_listings", {"X-API-Key": "nope"}), ("/score_listings", {"Authorization": "Token x"}),
                          ("/feedback", {"Authorization": "Basic !!notbase64"})):
        response = client.post(path, headers=headers)
        assert response.status_code == 401, headers
        assert response.json() == {"error": "missing or invalid API key"}
        assert "Bearer" in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("role", "path", "status"),
    [("scorer", "/score_listings", 200), ("scorer", "/feedback", 403), ("scorer", "/status", 403),
     ("reviewer", "/feedback", 200), ("reviewer", "/ui/index.html", 200), ("reviewer", "/score_listings", 403),
     ("admin", "/score_listings", 200), ("admin", "/feedback", 200), ("admin", "/status", 200),
     ("admin", "/unlisted", 200), ("reviewer", "/unlisted", 403)],
)
def test_roles(keys: FakeStore, role: str, path: str, status: int) -> None:
    response = tiny_app(keys).post(path, headers={"Authorization": f"Bearer tk_{role}_secret"})
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json() == {"error": f"role '{role}' may not call {path}"}
    else:
        assert response.json()["key_id"] == f"id-{role}" and response.json()["role"] == role


def test_key_in_any_supported_header_and_public_paths(keys: FakeStore) -> None:
    client = tiny_app(keys)
    basic = base64.b64encode(b"anyone:tk_reviewer_secret").decode()
    for headers in ({"X-API-Key": "tk_reviewer_secret"}, {"Authorization": f"Basic {basic}"},
                    {"authorization": "bearer tk_reviewer_secret"}):
        assert client.post("/feedback", headers=headers).json()["key_id"] == "id-reviewer", headers
    for path in ("/livez", "/metrics", "/docs.json"):
        response = client.get(path)
        assert response.status_code == 200 and response.json()["key_id"] == ANONYMOUS.key_id
    assert keys.calls == 1  # one store query for the key (cached after), none for the public paths


def test_auth_off_lets_everything_through_as_anonymous_admin() -> None:
    response = tiny_app(None, mode="off").post("/status")
    assert response.status_code == 200 and response.json() == {"key_id": "anonymous", "role": "admin", "bytes": 0}
    with pytest.raises(ValueError):
        AuthMiddleware(tiny_app(None).app, store=None, mode="api_keys")


def test_revocation_takes_effect_after_the_cache_ttl(keys: FakeStore) -> None:
    client = tiny_app(keys, cache_ttl_s=0.2)
    headers = {"X-API-Key": "tk_scorer_secret"}
    assert client.post("/score_listings", headers=headers).status_code == 200
    del keys.keys["tk_scorer_secret"]  # revoked in the store
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and client.post("/score_listings", headers=headers).status_code == 200:
        time.sleep(0.05)
    assert client.post("/score_listings", headers=headers).status_code == 401


def test_store_outage_keeps_known_keys_working_and_refuses_unknown_ones_with_503(keys: FakeStore) -> None:
    client = tiny_app(keys, cache_ttl_s=0.0)
    assert client.post("/score_listings", headers={"X-API-Key": "tk_scorer_secret"}).status_code == 200
    keys.down = True
    assert client.post("/score_listings", headers={"X-API-Key": "tk_scorer_secret"}).status_code == 200
    unknown = client.post("/score_listings", headers={"X-API-Key": "tk_admin_secret"})
    assert unknown.status_code == 503 and "unavailable" in unknown.json()["error"]


def test_cache_stale_answers_expire() -> None:
    store = FakeStore()
    store.add("k", Role.SCORER)
    now = [0.0]
    cache = CachedKeyVerifier(store, ttl_s=5, stale_s=60, clock=lambda: now[0])
    assert anyio.run(cache.verify, "k") is not None
    store.down = True
    now[0] = 30
    assert anyio.run(cache.verify, "k") is not None  # stale but recent: still accepted
    now[0] = 100
    with pytest.raises(KeyStoreUnavailable):
        anyio.run(cache.verify, "k")


def test_body_limit(keys: FakeStore) -> None:
    client = tiny_app(keys)
    headers = {"X-API-Key": "tk_scorer_secret"}
    assert client.post("/score_listings", headers=headers, content=b"x" * 1000).json()["bytes"] == 1000
    too_big = client.post("/score_listings", headers=headers, content=b"x" * 1001)
    assert too_big.status_code == 413 and too_big.json()["limit_bytes"] == 1000

    def chunks(n: int) -> Iterator[bytes]:
        yield from (b"x" * 100 for _ in range(n))

    assert client.post("/score_listings", headers=headers, content=chunks(10)).json()["bytes"] == 1000
    assert client.post("/score_listings", headers=headers, content=chunks(11)).status_code == 413
    # without a key the body is never read: 401 first
    assert client.post("/score_listings", content=b"x" * 5000).status_code == 401


# -- end to end: the real service with the middleware -------------------------------------------------
@pytest.mark.e2e
def test_real_service_roles_revocation_and_no_key_in_the_log(
    trained_store: TrainedStore, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = {"TRIAGE_HOME": str(home), "TRIAGE_MLFLOW_TRACKING_URI": trained_store.settings.tracking_uri,
           "TRIAGE_RELOAD_POLL_SECONDS": "0"}
    store_url = f"sqlite:///{(home / 'triage.db').resolve()}"
    keys = make_keys(store_url)
    server = start_authed_server(env, tmp_path / "serve.log")
    try:
        url = server.url
        listing = {"listing_id": "L1", "seller_id": "A7", "created_at": "2026-04-20T10:15:00Z", "title": "bag",
                   "category": "fashion", "price": 80}
        assert httpx.post(f"{url}/score_listings", json={"listings": [listing]}, timeout=30).status_code == 401
        scored = httpx.post(f"{url}/score_listings", json={"listings": [listing]},
                            headers=auth_headers(keys[Role.SCORER]), timeout=30)
        assert scored.status_code == 200, scored.text
        forbidden = httpx.post(f"{url}/feedback", json={}, headers=auth_headers(keys[Role.SCORER]), timeout=30)
        assert forbidden.status_code == 403
        assert forbidden.json() == {"error": "role 'scorer' may not call /feedback"}
        assert httpx.post(f"{url}/queue", json={"reviewer_id": "r"}, headers={"X-API-Key": keys[Role.REVIEWER]},
                          timeout=60).status_code == 200
        assert httpx.get(f"{url}/ui/", auth=("reviewer", keys[Role.REVIEWER]), timeout=30).status_code == 200
        assert httpx.get(f"{url}/ui/", timeout=30).status_code == 401
        assert httpx.post(f"{url}/status", headers=auth_headers(keys[Role.ADMIN]), timeout=30).status_code == 200
        for path in ("/livez", "/readyz", "/metrics", "/docs.json"):
            assert httpx.get(f"{url}{path}", timeout=30).status_code == 200, path
        # a revoke in the store reaches the running service within the cache TTL, without a restart
        engine = make_engine(store_url)
        store = ApiKeyStore(engine)
        store.revoke(store.verify(keys[Role.SCORER]).key_id)  # type: ignore[union-attr]
        engine.dispose()
        deadline = time.monotonic() + 30
        status = 200
        while time.monotonic() < deadline and status == 200:
            status = httpx.post(f"{url}/score_listings", json={"listings": [listing]},
                                headers=auth_headers(keys[Role.SCORER]), timeout=30).status_code
            time.sleep(0.2)
        assert status == 401
    finally:
        stop_server(server.process)
    log = server.log.read_text(errors="replace")
    assert "Service triage initialized" in log
    for secret in keys.values():
        assert secret not in log and secret.split("_")[-1] not in log
