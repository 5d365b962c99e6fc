"""Trust at the edges against the real BentoML service (auth on, one worker): each hostile input that was seen
against the demo service, and what the service answers now."""

from __future__ import annotations

import base64
import json
import stat
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from stores.api_keys import Role
from tests.conftest import RunningServer, TrainedStore, stop_server
from tests.test_auth import auth_headers, make_keys, start_authed_server

pytestmark = pytest.mark.e2e

MAX_FAILURES = 3
WINDOW_S = 3
LISTING = {"listing_id": "L-EDGE-7", "seller_id": "A7", "created_at": "2026-04-20T10:15:00Z", "title": "bag",
           "category": "fashion", "price": 80.0}


class Edge:
    def __init__(self, server: RunningServer, keys: dict[Role, str], home: Path) -> None:
        self.server, self.keys, self.home = server, keys, home

    def post(self, path: str, role: Role, **kwargs: Any) -> httpx.Response:
        headers = auth_headers(self.keys[role]) | kwargs.pop("headers", {})
        return httpx.post(f"{self.server.url}{path}", headers=headers, timeout=60, **kwargs)

    def basic(self, role: Role) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"reviewer:{self.keys[role]}".encode()).decode()}

    def log(self) -> str:
        return self.server.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def edge(trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    home = tmp_path_factory.mktemp("edges-home") / "home"  # created by the service (and make_keys)
    keys = make_keys(f"sqlite:///{(home / 'triage.db').resolve()}")
    env = {"TRIAGE_HOME": str(home), "TRIAGE_MLFLOW_TRACKING_URI": trained_store.settings.tracking_uri,
           "TRIAGE_RELOAD_POLL_SECONDS": "0", "TRIAGE_AUTH_MAX_FAILURES": str(MAX_FAILURES),
           "TRIAGE_AUTH_FAILURE_WINDOW_SECONDS": str(WINDOW_S)}
    server = start_authed_server(env, home.parent / "serve.log")
    try:
        yield Edge(server, keys, home)
    finally:
        stop_server(server.process)


def decision(**change: Any) -> dict[str, Any]:
    return {"decision_id": str(uuid.uuid4()), "case_id": "listing:L-EDGE-7", "entity_type": "listing",
            "entity_id": "L-EDGE-7", "outcome": "violation", "reviewer_id": "r1",
            "decided_at": datetime.now(UTC).isoformat()} | change


def test_reload_answers_200_with_the_status_to_an_admin_key(edge: Edge) -> None:
    response = edge.post("/reload", Role.ADMIN, json={})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] in {"ok", "degraded"} and body["models"]["listing@champion"] == "1"


MALFORMED_BODIES = {
    "no boundary": ("multipart/form-data", b"listings=1"),
    "unterminated part": ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data\r\n\r\nzz"),
    "part without disposition": ("multipart/form-data; boundary=xyz", b"--xyz\r\nX: y\r\n\r\nzzz\r\n--xyz--\r\n"),
    "binary": ("multipart/form-data; boundary=xyz", b"\xff\xfe\x00--xyz\r\n\r\n"),
    "form": ("application/x-www-form-urlencoded", b"listings=%ff%fe&&=="),
    "text": ("text/plain", b'{"listings": []}'),
}


@pytest.mark.parametrize(("path", "role"), [("/score_listings", Role.SCORER), ("/feedback", Role.REVIEWER),
                                            ("/case", Role.REVIEWER), ("/prioritize", Role.SCORER)])
@pytest.mark.parametrize("kind", list(MALFORMED_BODIES))
def test_bodies_that_are_not_json_get_415(edge: Edge, path: str, role: Role, kind: str) -> None:
    content_type, body = MALFORMED_BODIES[kind]
    response = edge.post(path, role, headers={"content-type": content_type}, content=body)
    assert response.status_code == 415, response.text[:300]
    assert response.json()["error"].startswith("unsupported Content-Type")


@pytest.mark.parametrize("body", [b"not json", b'{"listings": [', b"\xff\xfe\x00\x00"])
def test_unparsable_json_gets_400_in_the_documented_shape(edge: Edge, body: bytes) -> None:
    response = edge.post("/score_listings", Role.SCORER, headers={"content-type": "application/json"}, content=body)
    assert response.status_code == 400
    error = response.json()
    assert isinstance(error["error"], str) and isinstance(error["detail"], list) and error["detail"][0]["loc"] == []


def test_a_400_is_one_info_line_without_the_submitted_values(edge: Edge) -> None:
    marker = f"SUBMITTED-{uuid.uuid4().hex}"
    bad = [LISTING | {"listing_id": marker, "price": -123.456, "note": marker}, {"title": marker * 3}]
    before = edge.log()
    response = edge.post("/score_listings", Role.SCORER, json={"listings": bad})
    assert response.status_code == 400
    deadline = time.monotonic() + 10
    while "client error 400 on /score_listings" not in edge.log()[len(before):] and time.monotonic() < deadline:
        time.sleep(0.1)
    new = edge.log()[len(before):]
    lines = [line for line in new.splitlines() if line.strip()]
    assert [line for line in lines if "client error 400" in line], new[-2000:]
    assert "[ERROR]" not in new and "Traceback" not in new
    assert marker not in new and "-123.456" not in new and "input_value" not in new
    [line] = [line for line in lines if "client error 400" in line]
    assert "[INFO]" in line and '["listings", 0, "price"] greater_than_equal' in line


def test_cross_site_post_with_a_browser_sign_in_is_refused_and_decides_nothing(edge: Edge) -> None:
    body = decision()
    evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    for content_type in ("text/plain", "application/json"):
        response = httpx.post(f"{edge.server.url}/feedback", content=json.dumps({"decision": body}), timeout=60,
                              headers=edge.basic(Role.REVIEWER) | evil | {"content-type": content_type})
        assert response.status_code == 403, response.text
        assert response.json()["error"].startswith("cross-site request refused")
    # same origin: the page's own request is recorded, and it is the first time (created)
    same_origin = {"Origin": edge.server.url, "Sec-Fetch-Site": "same-origin"}
    response = httpx.post(f"{edge.server.url}/feedback", json={"decision": body}, timeout=60,
                          headers=edge.basic(Role.REVIEWER) | same_origin)
    assert response.status_code == 201 and response.json()["created"] is True, response.text
    # API clients with the key in a header, without an Origin, are unaffected
    assert edge.post("/feedback", Role.REVIEWER, json={"decision": body}).status_code == 200


def test_a_conflict_shows_values_not_reprs(edge: Edge) -> None:
    body = decision()
    assert edge.post("/feedback", Role.REVIEWER, json={"decision": body}).status_code == 201
    response = edge.post("/feedback", Role.REVIEWER, json={"decision": body | {"outcome": "no_violation"}})
    assert response.status_code == 409 and response.json()["fields"] == ["outcome"]
    error = response.json()["error"]
    assert "<Outcome" not in error and 'outcome: stored "violation", submitted "no_violation"' in error


def test_stores_and_spool_are_owner_only(edge: Edge) -> None:
    assert edge.post("/score_listings", Role.SCORER, json={"listings": [LISTING]}).status_code == 200
    files = [edge.home / name for name in ("triage.db", "triage.db-wal", "triage.db-shm")]
    spool = edge.home / "spool"
    workers = list(spool.glob("worker-*"))
    assert workers and all(f.exists() for f in files)
    for path in [*files, *(p for w in workers for p in w.iterdir())]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in [edge.home, spool, *workers]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_repeated_failed_authentication_gets_429_with_retry_after_then_resets(edge: Edge) -> None:
    """Last in the module: it uses up this address's budget (and waits for it to come back)."""
    admin = edge.post("/status", Role.ADMIN)  # verified once: this worker knows the key
    assert admin.status_code == 200
    key_id = edge.keys[Role.ADMIN][3:15]
    statuses = [httpx.post(f"{edge.server.url}/status", headers=auth_headers(f"tk_{key_id}_guess{i}"), timeout=30)
                for i in range(MAX_FAILURES + 3)]
    assert [r.status_code for r in statuses] == [401] * MAX_FAILURES + [429] * 3
    retry_after = int(statuses[-1].headers["retry-after"])
    assert 1 <= retry_after <= WINDOW_S and "too many failed authentications" in statuses[-1].json()["error"]
    # the key's holder, on the same address, is not locked out
    assert edge.post("/status", Role.ADMIN).status_code == 200
    time.sleep(WINDOW_S + 0.5)  # a whole window without failures: the budget is full again
    assert httpx.post(f"{edge.server.url}/status", headers=auth_headers(f"tk_{key_id}_again"),
                      timeout=30).status_code == 401
    assert "failed authentications over the limit" in edge.log()
    assert all(secret not in edge.log() for secret in edge.keys.values())
