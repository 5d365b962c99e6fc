"""Trust at the edges, in process: cross-site browser sign-ins, the failed-authentication limit, JSON-only
bodies, client errors in the log, owner-only store files, messages without reprs, and the OpenAPI document.
The same behaviours against the real server: tests/test_edges_e2e.py; the contract run: test_contract_e2e.py."""

from __future__ import annotations

import base64
import logging
import re
import stat
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.auth import AuthMiddleware, edge_settings
from serving.content_type import JsonBodyMiddleware
from serving.csrf import cross_site_reason, normalise_origin
from serving.framework import ClientErrorLogFilter
from serving.ratelimit import FailureLimiter, client_network
from serving.schemas import ID_PATTERN, RECORD_MODELS, _clean_id
from stores.api_keys import KeyInfo, Role
from stores.decisions import Decision, DecisionConflict, IdText, Outcome, StoredDecision
from stores.engine import make_engine
from stores.migrate import upgrade
from stores.records import STRIPPED_NOT_EMPTY_PATTERN, rfc3339_text
from stores.spool import ScoreSpool
from triage.settings import TriageSettings

REVIEWER_KEY = "tk_0123456789ab_reviewer-secret"
SCORER_KEY = "tk_ba9876543210_scorer-secret"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Keys:
    """A key store with two keys; counts how often it is asked."""

    def __init__(self) -> None:
        self.calls = 0
        self.keys = {REVIEWER_KEY: Role.REVIEWER, SCORER_KEY: Role.SCORER}

    def verify(self, secret: str) -> KeyInfo | None:
        self.calls += 1
        role = self.keys.get(secret)
        if role is None:
            return None
        return KeyInfo(key_id=secret[3:15], name=role.value, role=role, created_at=datetime.now(UTC), revoked_at=None)


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "bytes": len(await request.body())})


def service(keys: Keys, limiter: FailureLimiter | None = None, trusted: tuple[str, ...] = (),
            cache_ttl_s: float = 5.0) -> Starlette:
    """The middleware as the service stacks it, over endpoints that echo; one instance serves every client."""
    routes = [Route(p, echo, methods=["GET", "POST"]) for p in ("/feedback", "/queue", "/score_listings", "/ui/")]
    application = Starlette(routes=routes)
    application.add_middleware(JsonBodyMiddleware, paths={"/feedback", "/queue", "/score_listings"})
    application.add_middleware(AuthMiddleware, store=keys, limiter=limiter, trusted_origins=trusted,
                               cache_ttl_s=cache_ttl_s)
    return application


def client_of(application: Starlette, address: str = "203.0.113.7") -> TestClient:
    return TestClient(application, base_url="http://triage.example", client=(address, 5000))


def app(keys: Keys, limiter: FailureLimiter | None = None, trusted: tuple[str, ...] = ()) -> TestClient:
    return client_of(service(keys, limiter, trusted))


def basic(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"reviewer:{secret}".encode()).decode()}


# -- cross-site requests with a browser sign-in ----------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, True),
        ({"Origin": "https://evil.example"}, True),  # a browser without Fetch Metadata
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Sec-Fetch-Site": "same-site", "Origin": "http://other.triage.example"}, True),  # a sibling subdomain
        ({"Origin": "null"}, True),  # sandboxed frame
        ({"Origin": "http://triage.example:8080"}, True),  # another port is another origin
        ({"Origin": "https://triage.example"}, False),  # TLS ended at a proxy: same host and (default) port
        ({"Origin": "http://triage.example", "Sec-Fetch-Site": "same-origin"}, False),
        ({"Sec-Fetch-Site": "same-origin"}, False),
        ({}, False),  # not a browser: curl -u
    ],
)
def test_state_changing_requests_with_basic_credentials_must_be_same_origin(
    headers: dict[str, str], refused: bool
) -> None:
    response = app(Keys()).post("/feedback", headers=basic(REVIEWER_KEY) | headers, json={})
    assert response.status_code == (403 if refused else 200), response.text
    if refused:
        assert response.json()["error"].startswith("cross-site request refused")


def test_api_keys_in_headers_and_safe_methods_are_not_subject_to_the_origin_check() -> None:
    client = app(Keys())
    evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    # a browser cannot attach these headers cross-site without a CORS preflight, which the service never grants
    assert client.post("/feedback", headers={"Authorization": f"Bearer {REVIEWER_KEY}"} | evil).status_code == 200
    assert client.post("/feedback", headers={"X-API-Key": REVIEWER_KEY} | evil).status_code == 200
    # following a link to the page from another site is fine: reading it cross-site is not possible anyway
    assert client.get("/ui/", headers=basic(REVIEWER_KEY) | evil).status_code == 200


def test_trusted_origins_are_accepted_behind_a_proxy_that_rewrites_host() -> None:
    client = app(Keys(), trusted=("https://Review.Example.COM:443",))
    headers = basic(REVIEWER_KEY) | {"Origin": "https://review.example.com", "Sec-Fetch-Site": "same-site"}
    assert client.post("/feedback", headers=headers).status_code == 200
    with pytest.raises(ValueError, match="not an origin"):
        AuthMiddleware(client.app, store=Keys(), trusted_origins=["review.example.com"])


def test_basic_credentials_only_where_the_page_is() -> None:
    client = app(Keys())
    response = client.post("/score_listings", headers=basic(SCORER_KEY), json={})
    assert response.status_code == 401 and "Basic credentials are accepted only" in response.json()["error"]
    # no login prompt on API paths: the challenge offers Bearer only
    assert response.headers["www-authenticate"] == 'Bearer realm="triage"'
    assert client.post("/score_listings", headers={"Authorization": f"Bearer {SCORER_KEY}"}).status_code == 200
    page = client.get("/ui/")
    assert page.status_code == 401 and page.headers["www-authenticate"].startswith("Basic ")


def test_origin_normalisation() -> None:
    assert normalise_origin("HTTPS://Example.org:443") == "https://example.org"
    assert normalise_origin("http://[::1]:3000") == "http://[::1]:3000"
    for bad in ("null", "example.org", "ftp://example.org", "https://example.org/path", "http://h:99999"):
        assert normalise_origin(bad) is None, bad
    scope = {"type": "http", "method": "POST", "headers": [(b"origin", b"http://127.0.0.1:3000")],
             "server": ("127.0.0.1", 3000)}
    assert cross_site_reason(scope) is None  # no Host header: the address the server listens on


# -- the failed-authentication limit ------------------------------------------------------------------------
def test_limiter_allows_a_burst_then_one_failure_per_interval_and_resets_after_the_window() -> None:
    clock = Clock()
    limiter = FailureLimiter(max_failures=5, window_s=60, clock=clock)
    for _ in range(4):
        assert limiter.failed("a") == [] and not limiter.limited("a")
    assert limiter.failed("a") == ["a"]  # the fifth uses the budget up
    assert limiter.limited("a") and limiter.retry_after("a") == pytest.approx(12.0)
    assert not limiter.limited("b")  # other names are unaffected
    clock.now += 12.0
    assert not limiter.limited("a")  # one more failure allowed every window / max_failures
    limiter.failed("a")
    assert limiter.limited("a")
    clock.now += 60.0
    assert not limiter.limited("a")
    for _ in range(4):
        limiter.failed("a")
    assert not limiter.limited("a")  # a full budget again after a window without failures


def test_limiter_memory_is_bounded() -> None:
    limiter = FailureLimiter(max_failures=2, window_s=60, max_names=100, clock=Clock())
    for i in range(10_000):
        limiter.failed(f"n{i}")
    assert len(limiter) == 100


def test_client_networks() -> None:
    assert client_network(("203.0.113.7", 1)) == "addr:203.0.113.7"
    assert client_network(("2001:db8:1:2:aaaa::1", 1)) == client_network(("2001:db8:1:2:bbbb::9", 1)) == (
        "addr:2001:db8:1:2::/64")
    assert client_network(("::ffff:203.0.113.7", 1)) == "addr:203.0.113.7"
    assert client_network(None) == "addr:unknown"


def test_repeated_failures_get_429_with_retry_after_and_the_limit_resets() -> None:
    clock = Clock()
    keys = Keys()
    limiter = FailureLimiter(max_failures=3, window_s=30, clock=clock)
    application = service(keys, limiter)
    attacker = client_of(application, "198.51.100.9")
    statuses = [attacker.post("/queue", headers={"X-API-Key": f"tk_aaaaaaaaaaaa_guess{i}"}).status_code
                for i in range(6)]
    assert statuses == [401, 401, 401, 429, 429, 429]
    limited = attacker.post("/queue", headers={"X-API-Key": "tk_aaaaaaaaaaaa_guess"})
    assert limited.headers["retry-after"] == "10" and "too many failed authentications" in limited.json()["error"]
    calls = keys.calls
    attacker.post("/queue", headers={"X-API-Key": "tk_bbbbbbbbbbbb_x"})
    assert keys.calls == calls  # past the limit unknown keys cost no store query
    # another client authenticates as before
    other = client_of(application, "192.0.2.1")
    assert other.post("/queue", headers={"X-API-Key": REVIEWER_KEY}).status_code == 200
    clock.now += 30
    assert attacker.post("/queue", headers={"X-API-Key": "tk_aaaaaaaaaaaa_guess"}).status_code == 401


def test_flooding_a_public_key_id_does_not_lock_out_its_holder() -> None:
    """The trade-off (docs/security.md): keys this worker verified within 24 h are still checked past the
    limit; a key it has never seen verify waits like any unknown key."""
    clock = Clock()
    keys = Keys()
    limiter = FailureLimiter(max_failures=3, window_s=60, clock=clock)
    application = service(keys, limiter, cache_ttl_s=0.0)  # every request asks the store: no cached answer helps
    holder = client_of(application, "192.0.2.1")
    assert holder.post("/queue", headers={"X-API-Key": REVIEWER_KEY}).status_code == 200
    attacker = client_of(application, "198.51.100.9")
    key_id = REVIEWER_KEY[3:15]
    for i in range(10):
        attacker.post("/queue", headers={"X-API-Key": f"tk_{key_id}_guess{i}"})
    assert limiter.limited(f"key:{key_id}")
    calls = keys.calls
    assert holder.post("/queue", headers={"X-API-Key": REVIEWER_KEY}).status_code == 200
    assert keys.calls == calls + 1  # checked against the store although its key id is over the limit
    # a holder sharing the attacker's address (NAT, proxy) keeps working too
    assert attacker.post("/queue", headers={"X-API-Key": REVIEWER_KEY}).status_code == 200
    # ... but a valid key never seen by this worker waits from a limited address
    assert attacker.post("/score_listings", headers={"X-API-Key": SCORER_KEY}).status_code == 429


def test_missing_keys_and_cross_site_refusals_are_not_failed_guesses() -> None:
    limiter = FailureLimiter(max_failures=2, window_s=60, clock=Clock())
    client = app(Keys(), limiter)
    for _ in range(5):
        assert client.post("/queue").status_code == 401
        assert client.post("/feedback", headers=basic("tk_cccccccccccc_x") | {"Origin": "https://evil.example"}
                           ).status_code == 403
    assert len(limiter) == 0


def test_limits_and_origins_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_AUTH_MAX_FAILURES", "4")
    monkeypatch.setenv("TRIAGE_AUTH_FAILURE_WINDOW_SECONDS", "2")
    monkeypatch.setenv("TRIAGE_TRUSTED_ORIGINS", "https://a.example, https://b.example")
    limiter, origins = edge_settings(TriageSettings())
    assert (limiter.max_failures, limiter.window_s, origins) == (4, 2.0, ["https://a.example", "https://b.example"])
    monkeypatch.setenv("TRIAGE_AUTH_MAX_FAILURES", "0")
    with pytest.raises(ValueError, match="auth_max_failures"):
        TriageSettings()


# -- JSON bodies only ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=x", "multipart/form-data",
                                          "application/x-www-form-urlencoded", "text/plain",
                                          "application/vnd.bentoml+pickle", "application/json-seq"])
def test_other_media_types_get_415_before_any_body_is_read(content_type: str) -> None:
    response = app(Keys()).post("/queue", headers={"X-API-Key": REVIEWER_KEY, "Content-Type": content_type},
                                content=b"--x\r\nbroken")
    assert response.status_code == 415 and response.headers["accept-post"] == "application/json"
    assert response.json()["error"].startswith("unsupported Content-Type")


def test_json_and_a_missing_content_type_pass() -> None:
    client = app(Keys())
    for headers in ({"Content-Type": "application/json"}, {"Content-Type": "Application/JSON; charset=utf-8"}, {}):
        assert client.post("/queue", headers={"X-API-Key": REVIEWER_KEY} | headers, content=b"{}").status_code == 200
    # GET, and paths that are not API endpoints, are left alone
    assert client.get("/ui/", headers={"X-API-Key": REVIEWER_KEY, "Content-Type": "text/plain"}).status_code == 200


# -- client errors in the log ----------------------------------------------------------------------------------
def _bentoml_record(exc: BaseException) -> logging.LogRecord:
    return logging.LogRecord("bentoml._internal.server.http_app", logging.ERROR, __file__, 1,
                             "Exception on %s [%s]", ("/score_listings", "POST"), (type(exc), exc, None))


def test_a_validation_error_becomes_one_info_line_without_the_submitted_values() -> None:
    with pytest.raises(ValidationError) as raised:
        RECORD_MODELS["listing"].model_validate({"listing_id": "SECRET-LISTING-42", "price": -17.25, "title": "a\x00b",
                                      "evil\nINJECTED": 1})
    record = _bentoml_record(raised.value)
    assert ClientErrorLogFilter().filter(record)
    line = logging.Formatter("%(levelname)s %(message)s").format(record)
    assert record.levelno == logging.INFO and "\n" not in line
    assert line.startswith("INFO client error 400 on /score_listings: ") and '["price"] greater_than_equal' in line
    for value in ("SECRET-LISTING-42", "-17.25", "a\x00b", "input_value"):
        assert value not in line


def test_server_errors_keep_their_traceback() -> None:
    try:
        raise RuntimeError("store down")
    except RuntimeError:
        record = _bentoml_record(sys.exc_info()[1])  # type: ignore[arg-type]
    assert ClientErrorLogFilter().filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None


# -- owner-only files ------------------------------------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_stores_and_their_folders_are_created_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "home" / "nested"
    engine = make_engine(f"sqlite:///{folder / 'triage.db'}")
    upgrade(engine)  # writes: the -wal and -shm files exist now
    files = [folder / "triage.db", folder / "triage.db-wal", folder / "triage.db-shm"]
    assert all(f.exists() for f in files)
    assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
    assert _mode(folder) == _mode(folder.parent) == 0o700
    engine.dispose()


def test_spool_files_are_owner_only(tmp_path: Path) -> None:
    from tests.conftest_stores import make_scores

    spool = ScoreSpool(tmp_path / "spool" / "worker-1")
    spool.append(make_scores(2, prefix="S"))
    spool.reject(["not a record"])
    spool.close()
    assert _mode(tmp_path / "spool") == _mode(tmp_path / "spool" / "worker-1") == 0o700
    for path in (tmp_path / "spool" / "worker-1").iterdir():
        assert _mode(path) == 0o600, path


# -- messages show values -----------------------------------------------------------------------------------------
def test_a_conflict_names_values_not_reprs() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    submitted = Decision(decision_id="d1", case_id="listing:L1", entity_type="listing", entity_id="L1",
                         outcome=Outcome.NO_VIOLATION, reviewer_id="r1", decided_at=now, loss_amount=5)
    stored = StoredDecision(**(submitted.model_dump() | {"outcome": Outcome.VIOLATION,
                                                          "decided_at": now - timedelta(hours=1)}), received_at=now)
    message = str(DecisionConflict(stored, submitted, ("outcome", "decided_at")))
    assert "<" not in message and "Outcome." not in message and "datetime" not in message
    assert 'outcome: stored "violation", submitted "no_violation"' in message
    assert 'decided_at: stored "2026-05-01T11:00:00Z", submitted "2026-05-01T12:00:00Z"' in message


# -- what the validators accept is what the document says ----------------------------------------------------------
def _ecma(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern[:-1] + r"\Z")  # JSON Schema's closing `$` is the end of the string


def test_documented_patterns_accept_exactly_what_the_validators_accept() -> None:
    ids, stripped, adapter = _ecma(ID_PATTERN), _ecma(STRIPPED_NOT_EMPTY_PATTERN), TypeAdapter(IdText)
    for codepoint in [*range(0x3100), 0xFEFF, 0x205F]:
        for text in (chr(codepoint), "a" + chr(codepoint), chr(codepoint) * 2):
            try:
                _clean_id(text)
                clean = True
            except ValueError:
                clean = False
            assert clean == bool(ids.match(text)), repr(text)
            try:
                adapter.validate_python(text)
                valid = "\x00" not in text  # Decision refuses NUL in a validator of its own
            except ValidationError:
                valid = False
            assert valid == bool(stripped.match(text)), repr(text)


@pytest.mark.parametrize("value", [0, 1.5, True, "0", "1700000000", "2026-04-20 10:15:00Z", "20260420T101500Z"])
def test_times_are_rfc3339_text_only(value: Any) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        rfc3339_text(value)


def test_rfc3339_times_and_datetimes_pass() -> None:
    for value in ("2026-04-20T10:15:00Z", "2026-04-20t10:15:00+02:00", datetime(2026, 4, 20, tzinfo=UTC), None):
        assert rfc3339_text(value) == value


def test_an_existing_store_others_may_read_is_left_alone_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "triage.db"
    path.touch()
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="stores.engine"):
        make_engine(f"sqlite:///{path}").dispose()
    assert _mode(path) == 0o644 and "readable by other users" in caplog.text
