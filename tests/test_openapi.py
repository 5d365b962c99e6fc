"""The OpenAPI document `/docs.json` serves, built in process (serving/openapi.py): a valid OpenAPI 3.1 document
that says what the service answers. Against the real service: tests/test_contract_e2e.py."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR
from starlette.applications import Starlette
from starlette.testclient import TestClient

from serving.openapi import OpenAPIMiddleware, contract_spec
from serving.service import TriageService

API_ROUTES = ("/case", "/feedback", "/prioritize", "/queue", "/reload", "/score_accounts", "/score_listings",
              "/status")
EVERY_API_ANSWER = {"200", "400", "401", "403", "413", "415", "429", "500", "503", "504"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return contract_spec(TriageService)


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_a_valid_openapi_31_document_with_valid_json_schemas(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.1.0"
    OPENAPI_31_VALIDATOR.validate(spec)
    for name, schema in spec["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
    refs = {n["$ref"].rsplit("/", 1)[1] for n in _walk(spec) if isinstance(n.get("$ref"), str)}
    assert refs <= set(spec["components"]["schemas"])  # every reference resolves
    assert not [n for n in spec["components"]["schemas"] if "IODescriptor" in n or n in {"InvalidArgument"}]


def test_every_operation_documents_its_answers_and_credentials(spec: dict[str, Any]) -> None:
    for route in API_ROUTES:
        operation = spec["paths"][route]["post"]
        assert set(operation["responses"]) >= EVERY_API_ANSWER, route
        schemes = [next(iter(s)) for s in operation["security"]]
        assert schemes[:2] == ["ApiKeyHeader", "BearerAuth"], route
        assert ("BrowserSignIn" in schemes) == (route in {"/queue", "/case", "/feedback"}), route
        for status, response in operation["responses"].items():
            schema = response["content"]["application/json"]["schema"]
            assert (schema == {"$ref": "#/components/schemas/Error"}) == (status not in {"200", "201"}), (route, status)
        assert operation["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    assert {"201", "409"} <= set(spec["paths"]["/feedback"]["post"]["responses"])
    assert "404" in spec["paths"]["/case"]["post"]["responses"]
    assert set(spec["components"]["securitySchemes"]) == {"ApiKeyHeader", "BearerAuth", "BrowserSignIn"}
    for path in ("/livez", "/readyz", "/healthz", "/metrics"):
        assert spec["paths"][path]["get"]["security"] == []


def test_errors_have_one_shape_with_detail_as_a_list(spec: dict[str, Any]) -> None:
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and error["properties"]["detail"]["type"] == "array"
    validator = jsonschema_rs.validator_for({"$ref": "#/components/schemas/Error", "components": spec["components"]})
    detail = [{"type": "greater_than_equal", "loc": ["listings", 0, "price"], "msg": "Input should be >= 0"}]
    assert validator.is_valid({"error": "1 validation error for Input", "detail": detail})
    assert validator.is_valid({"error": "decision d1 already recorded", "fields": ["outcome"]})
    assert not validator.is_valid({"error": "x", "detail": "a string"})  # what BentoML documented
    assert not validator.is_valid([{"error": "x"}])


def test_null_is_documented_where_the_service_returns_it(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    nullable = {"ScoredEntity": "reasons", "ServiceStatus": "registry_poll_error", "Case": "risk_type",
                "ModelRef": "alias"}
    for model, field in nullable.items():
        assert {"type": "null"} in schemas[model]["properties"][field]["anyOf"], (model, field)
    queue = spec["paths"]["/queue"]["post"]["requestBody"]
    assert queue["required"] is True  # reviewer_id is required: a missing body is not a valid request
    assert spec["paths"]["/status"]["post"]["requestBody"]["required"] is False  # a missing body reads as {}


def test_the_middleware_serves_the_document_once_built() -> None:
    app = Starlette()
    app.add_middleware(OpenAPIMiddleware, service=TriageService)
    client = TestClient(app)
    first = client.get("/docs.json")
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    assert first.json() == contract_spec(TriageService)
    assert client.get("/docs.json").content == first.content
    assert client.post("/docs.json").status_code == 404  # only GET and HEAD are answered here
