"""Hostile input against the real server: every malformed request gets a 4xx naming the field (or a documented
default), never a 5xx. Requests generated from the service's own OpenAPI document: tests/test_contract_e2e.py.

Documented defaults (docs/security.md): unknown categories are scored as missing; missing optional fields are
missing; duplicate ids in a batch are each scored; NUL bytes, RTL marks and emoji are ordinary text;
lone surrogates are invalid JSON (400)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from stores.api_keys import Role
from tests.conftest import RunningServer, TrainedStore, stop_server
from tests.test_auth import auth_headers, make_keys, start_authed_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LISTING = {"listing_id": "L1", "seller_id": "A7", "created_at": "2026-04-20T10:15:00Z", "title": "Leather bag",
           "category": "fashion", "brand": "Gucci", "price": 80.0, "reference_price": 1500.0, "stock": 40}
ACCOUNT = {"account_id": "A7", "account_type": "seller", "created_at": "2025-01-01T00:00:00Z",
           "observed_at": "2026-04-20T00:00:00Z"}
ROLE_OF = {"/score_listings": Role.SCORER, "/score_accounts": Role.SCORER, "/prioritize": Role.SCORER,
           "/queue": Role.REVIEWER, "/case": Role.REVIEWER, "/feedback": Role.REVIEWER,
           "/status": Role.ADMIN, "/reload": Role.ADMIN}


class Hostile:
    def __init__(self, server: RunningServer, keys: dict[Role, str]) -> None:
        self.server = server
        self.keys = keys

    def post(self, path: str, body: Any = None, *, content: bytes | None = None) -> httpx.Response:
        headers = auth_headers(self.keys[ROLE_OF[path]]) | {"content-type": "application/json"}
        data = content if content is not None else json.dumps(body, allow_nan=True).encode()
        return httpx.post(f"{self.server.url}{path}", content=data, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def hostile(trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    # its own store: fuzzed scores and decisions must not reach other tests' queue
    home = tmp_path_factory.mktemp("hostile-home")
    keys = make_keys(f"sqlite:///{(home / 'triage.db').resolve()}")
    env = {"TRIAGE_HOME": str(home), "TRIAGE_MLFLOW_TRACKING_URI": trained_store.settings.tracking_uri,
           "TRIAGE_RELOAD_POLL_SECONDS": "0"}
    server = start_authed_server(env, home / "serve.log")
    try:
        yield Hostile(server, keys)
    finally:
        stop_server(server.process)


def listing(**change: Any) -> dict[str, Any]:
    return {k: v for k, v in (LISTING | change).items() if v is not ...}


def decision(**change: Any) -> dict[str, Any]:
    return {"decision_id": str(uuid.uuid4()), "case_id": "listing:x", "entity_type": "listing", "entity_id": "x",
            "outcome": "violation", "reviewer_id": "r1", "decided_at": datetime.now(UTC).isoformat()} | change


def field_named(response: httpx.Response, field: str) -> bool:
    return any(field in [str(p) for p in d.get("loc", [])] for d in response.json().get("detail", []))


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/score_listings", {"listings": [listing(price=float("nan"))]}, "price"),
        ("/score_listings", {"listings": [listing(price=float("inf"))]}, "price"),
        ("/score_listings", {"listings": [listing(reference_price=float("-inf"))]}, "reference_price"),
        ("/score_listings", {"listings": [listing()], "top_reasons": float("nan")}, "top_reasons"),
        ("/score_listings", {"listings": [listing(price="eighty")]}, "price"),
        ("/score_listings", {"listings": [listing(stock=1.5)]}, "stock"),
        ("/score_listings", {"listings": [listing(price=True)]}, "price"),  # a boolean is not a number
        # NUL cannot be stored in PostgreSQL text: refused up front, naming the field
        ("/score_listings", {"listings": [listing(title="a\x00b")]}, "title"),
        ("/score_listings", {"listings": [listing(description="\u0000" * 100)]}, "description"),
        ("/score_listings", {"listings": [listing(title="x" * 501)]}, "title"),
        ("/score_listings", {"listings": [listing(price=...)]}, "price"),
        ("/score_listings", {"listings": [listing(created_at="2026-04-20T10:15:00")]}, "created_at"),
        ("/score_listings", {"listings": [listing(surprise=1)]}, "surprise"),
        ("/score_listings", {"listings": []}, "listings"),
        ("/score_listings", {"listings": [listing()] * 1001}, "listings"),
        ("/score_listings", {"listings": "L1"}, "listings"),
        ("/score_listings", {"listings": [listing()], "reasons": "some"}, "reasons"),
        ("/score_listings", {"listings": [listing()], "top_reasons": 10**30}, "top_reasons"),
        ("/score_accounts", {"accounts": [ACCOUNT | {"followers": float("nan")}]}, "followers"),
        ("/score_accounts", {"accounts": [ACCOUNT | {"account_id": ""}]}, "account_id"),
        ("/feedback", {"decision": decision(loss_amount=float("inf"))}, "loss_amount"),
        ("/feedback", {"decision": decision(loss_amount=float("nan"))}, "loss_amount"),
        ("/feedback", {"decision": decision(outcome="maybe")}, "outcome"),
        ("/feedback", {"decision": decision(note="n" * 2001)}, "note"),
        ("/feedback", {"decision": decision(decided_at="3000-01-01T00:00:00Z")}, "decided_at"),
        ("/queue", {"reviewer_id": "r", "limit": float("nan")}, "limit"),
        ("/queue", {"reviewer_id": "r", "tier": "P9"}, "tier"),
        ("/queue", {"reviewer_id": ""}, "reviewer_id"),
        ("/case", {"case_id": "x" * 201}, "case_id"),
        ("/case", {"case_id": 12345}, "case_id"),
        ("/prioritize", {"listings": [{"record": listing(price=float("nan"))}]}, "price"),
        ("/prioritize", {"listings": [{"record": listing(), "enqueued_at": "yesterday"}]}, "enqueued_at"),
        ("/prioritize", {"listings": [{"record": listing(), "enqueued_at": 0}]}, "enqueued_at"),  # not RFC 3339
        ("/score_listings", {"listings": [listing(created_at="1700000000")]}, "created_at"),
        ("/score_listings", {"listings": [listing(stock="40")]}, "stock"),
        ("/score_listings", {"listings": [listing()], "top_reasons": True}, "top_reasons"),
        ("/feedback", {"decision": decision(loss_amount=False)}, "loss_amount"),
    ],
)
def test_malformed_input_gets_400_naming_the_field(hostile: Hostile, path: str, body: Any, field: str) -> None:
    response = hostile.post(path, body)
    assert response.status_code == 400, response.text[:500]
    assert field_named(response, field), response.text[:500]


@pytest.mark.parametrize(
    "content",
    [b"not json", b"", b"[null, null]", b'{"listings": [', b'{"listings": [{"listing_id": "L\\ud800"}]}',
     "{\"listings\": \"\u00e9\"}".encode("latin-1"), b"\xff\xfe\x00\x00", b"{" * 10_000 + b"}" * 10_000],
)
def test_unparseable_bodies_get_400(hostile: Hostile, content: bytes) -> None:
    response = hostile.post("/score_listings", content=content)
    assert response.status_code == 400, response.text[:300]
    assert "error" in response.json()


def test_an_empty_prioritize_request_ranks_nothing(hostile: Hostile) -> None:
    # every list defaults to empty in the contract, so `{}` is a valid request: it ranks no cases
    response = hostile.post("/prioritize", {})
    assert response.status_code == 200, response.text[:300]
    assert response.json()["cases"] == []


def test_oversized_body_gets_413(hostile: Hostile) -> None:
    response = hostile.post("/score_listings", content=b" " * (16 * 1024 * 1024 + 1))
    assert response.status_code == 413 and response.json()["limit_bytes"] == 16 * 1024 * 1024


@pytest.mark.parametrize(
    "record",
    [
        listing(category="no-such-category", brand="Nobody", seller_country="ZZ"),  # unknown: treated as missing
        {k: LISTING[k] for k in ("listing_id", "seller_id", "created_at", "title", "category", "price")},
        listing(title="RTL \u202eevil\u202c mark, emoji \U0001f45c\U0001f525, zero width \u200b"),
        listing(listing_id="\U0001f600" * 16, description="\u00e9t\u00e9 " * 100),
    ],
    ids=["unknown-categories", "optional-fields-missing", "unicode-oddities", "emoji-id-long-description"],
)
def test_documented_defaults_are_scored(hostile: Hostile, record: dict[str, Any]) -> None:
    response = hostile.post("/score_listings", {"listings": [record], "reasons": "all"})
    assert response.status_code == 200, response.text[:500]
    [result] = response.json()["results"]
    assert result["entity_id"] == record["listing_id"] and 0 <= result["probability"] <= 1


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/score_listings", {"listings": [listing(listing_id=" ")]}, "listing_id"),
        ("/score_accounts", {"accounts": [ACCOUNT | {"account_id": "\x1c"}]}, "account_id"),
        ("/prioritize", {"listings": [{"record": listing(listing_id="\t")}]}, "listing_id"),
    ],
)
def test_blank_ids_get_400(hostile: Hostile, path: str, body: Any, field: str) -> None:
    response = hostile.post(path, body)
    assert response.status_code == 400, response.text[:300]
    assert field_named(response, field)


def test_duplicate_ids_in_a_batch_are_each_scored(hostile: Hostile) -> None:
    response = hostile.post("/score_listings", {"listings": [listing(), listing(price=5000.0), listing()]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["entity_id"] for r in results] == ["L1", "L1", "L1"]
    assert results[0]["probability"] == results[2]["probability"]


def test_nothing_to_prioritize_is_an_empty_ranking(hostile: Hostile) -> None:
    response = hostile.post("/prioritize", {})
    assert response.status_code == 200, response.text
    assert response.json()["cases"] == []


def test_whole_numbers_written_as_floats_are_integers(hostile: Hostile) -> None:
    """JSON has one number type: 40.0 is the integer 40 (JSON Schema's `integer` says so too)."""
    response = hostile.post("/score_listings", {"listings": [listing(stock=40.0)], "top_reasons": 2.0})
    assert response.status_code == 200, response.text[:300]
