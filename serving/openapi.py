"""The OpenAPI document served at `/docs.json`: the contract as the service enforces it.

BentoML 1.4 generates a document that says OpenAPI 3.0.2 but uses JSON Schema 2020-12 (`type: "null"`,
`examples` lists), keeps only the first branch of every top-level `anyOf` (so optional fields lose `null`),
documents 400 with `detail` as a string, and knows nothing of the statuses and credentials this service
adds (201, 401, 403, 409, 413, 415, 429, 503). Rather than patch its generator, this module post-processes
it: BentoML's document supplies the paths, operation ids and descriptions; every schema is generated again
from the service's own pydantic models, which emit JSON Schema 2020-12, i.e. OpenAPI **3.1**, where `null`
is an ordinary type. On top of that: one `Error` schema for every error answer, every status code each
operation can answer, and the security schemes with each operation's own.

`OpenAPIMiddleware` answers `GET /docs.json` with it (built once per worker, on first request).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.auth import DEFAULT_MAX_BODY_BYTES, DEFAULT_POLICY, RoutePolicy

OPENAPI_VERSION = "3.1.0"
SPEC_PATH = "/docs.json"
REF = "#/components/schemas/{model}"
JSON = "application/json"

ERROR_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "title": "Error",
        "description": "Every error answer: what went wrong, and for some statuses which fields.",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "What went wrong, in words"},
            "detail": {"type": "array", "items": {"$ref": REF.format(model="ErrorDetail")},
                       "description": "400: one entry per invalid field"},
            "fields": {"type": "array", "items": {"type": "string"},
                       "description": "409: the fields whose content differs from the stored decision"},
            "limit_bytes": {"type": "integer", "description": "413: the largest body accepted"},
        },
    },
    "ErrorDetail": {
        "type": "object",
        "title": "ErrorDetail",
        "required": ["loc", "msg"],
        "properties": {
            "loc": {"type": "array", "items": {"type": ["string", "integer"]},
                    "description": "Path to the field: argument, record index, field; [] for the whole body"},
            "msg": {"type": "string", "description": "The problem"},
            "type": {"type": "string", "description": "Machine-readable kind of problem (pydantic's error type)"},
            "url": {"type": "string", "description": "Where the error type is explained"},
        },
    },
}
SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "An API key (`tk_<key id>_<secret>`, `triage keys create`)"},
    "BearerAuth": {"type": "http", "scheme": "bearer", "description": "The same key as `Authorization: Bearer`"},
    "BrowserSignIn": {"type": "http", "scheme": "basic",
                      "description": "The reviewer page's browser sign-in: any user name, the key as the password. "
                                     "Accepted only on the page and the endpoints it calls, never cross-site."},
}

_SECONDS = {"type": "integer", "minimum": 1}
ERROR_STATUSES: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("The body is not JSON, or a field is invalid (`detail[].loc` names it)", {}),
    401: ("No API key, an unknown one, or Basic credentials on an API-only endpoint",
          {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}),
    403: ("The key's role may not call this endpoint, or a browser sign-in came from another site", {}),
    413: (f"Body larger than {DEFAULT_MAX_BODY_BYTES} bytes", {}),
    415: ("`Content-Type` is not `application/json`",
          {"Accept-Post": {"required": True, "schema": {"type": "string", "const": JSON}}}),
    429: ("Too many failed authentications from this client or for this key id; retry after `Retry-After`",
          {"Retry-After": {"required": True, "schema": _SECONDS}}),
    500: ("Unexpected error, e.g. the store is down on `/feedback` (see the server log); nothing was acknowledged", {}),
    503: ("The key store is unreachable and the key was not verified recently",
          {"Retry-After": {"required": False, "schema": _SECONDS}}),
    504: ("The request took longer than the service's timeout", {}),
}
EXTRA_STATUSES: dict[str, dict[int, str]] = {
    "/case": {404: "The case is not open (decided, or never queued)"},
    "/feedback": {409: "This `decision_id` is stored with other content (`fields` names what differs)"},
}
CREATED_STATUSES: dict[str, str] = {
    "/feedback": "Decision stored now (`created: true`); a retry of the same decision answers 200, `created: false`",
}
INFRA_RESPONSES: dict[str, dict[str, Any]] = {
    "/readyz": {"503": {"description": "Not ready yet (models still loading)"}},
}


def response_model(output_spec: type[BaseModel]) -> type[BaseModel]:
    """The endpoint's own return model behind BentoML's `<Model>IODescriptor` subclass of it."""
    for cls in output_spec.__mro__[1:]:
        if isinstance(cls, type) and issubclass(cls, BaseModel) and not cls.__module__.startswith("_bentoml"):
            return cls
    return output_spec


def _merge_definitions(components: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    for name, definition in schema.pop("$defs", {}).items():
        if components.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas named {name} (validation vs serialization?)")
    return schema


def _json_response(description: str, schema: dict[str, Any], headers: Mapping[str, Any] | None = None
                   ) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = dict(headers)
    return response


def _security(policy: RoutePolicy, route: str) -> list[dict[str, list[str]]]:
    schemes: list[dict[str, list[str]]] = [{"ApiKeyHeader": []}, {"BearerAuth": []}]
    return [*schemes, {"BrowserSignIn": []}] if policy.accepts_basic(route) else schemes


def _operation(api: Any, base: dict[str, Any], components: dict[str, Any], policy: RoutePolicy) -> dict[str, Any]:
    route = api.route
    request = _merge_definitions(components, api.input_spec.model_json_schema(ref_template=REF, mode="validation"))
    request["title"] = f"{api.name} request"
    model = response_model(api.output_spec)
    output = _merge_definitions(components, model.model_json_schema(ref_template=REF, mode="serialization"))
    _merge_definitions(components, {"$defs": {model.__name__: output}})
    ok_schema = {"$ref": REF.format(model=model.__name__)}
    error = {"$ref": REF.format(model="Error")}
    responses: dict[str, Any] = {"200": _json_response("OK", ok_schema)}
    if route in CREATED_STATUSES:
        responses["201"] = _json_response(CREATED_STATUSES[route], ok_schema)
    statuses: dict[int, tuple[str, dict[str, Any]]] = {
        status: (text, {}) for status, text in EXTRA_STATUSES.get(route, {}).items()} | ERROR_STATUSES
    for status, (text, headers) in sorted(statuses.items()):
        responses[str(status)] = _json_response(text, error, headers)
    role = policy.required_role(route)
    return {
        "tags": base.get("tags", []),
        "summary": (api.doc or "").strip().split("\n")[0][:120] or api.name,
        "description": base.get("description", ""),
        "operationId": base["operationId"],
        "x-required-role": role.value if role is not None else None,
        "security": _security(policy, route),
        # an endpoint without required arguments reads a missing body as `{}`
        "requestBody": {"required": bool(request.get("required")), "content": {JSON: {"schema": request}}},
        "responses": responses,
    }


def contract_spec(service: Any, policy: RoutePolicy = DEFAULT_POLICY) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``service`` (a ``bentoml.Service``), as a plain dict."""
    base = copy.deepcopy(service.openapi_spec.asdict())
    components: dict[str, Any] = copy.deepcopy(ERROR_SCHEMAS)
    paths: dict[str, Any] = {}
    for path, item in base["paths"].items():
        if "get" in item and path not in {api.route for api in service.apis.values()}:  # health and metrics
            responses = {"200": {"description": "OK"}} | INFRA_RESPONSES.get(path, {})
            paths[path] = {"get": {**item["get"], "security": [], "responses": responses}}
    for api in sorted(service.apis.values(), key=lambda a: a.route):
        paths[api.route] = {"post": _operation(api, base["paths"][api.route]["post"], components, policy)}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {**base["info"], "description": "Marketplace risk triage: scoring, the review queue and decisions. "
                 "Field-by-field contract in docs/api.md; credentials and limits in docs/security.md."},
        "servers": base.get("servers", [{"url": "."}]),
        "tags": base.get("tags", []),
        "paths": paths,
        "components": {"schemas": dict(sorted(components.items())), "securitySchemes": SECURITY_SCHEMES},
    }


class OpenAPIMiddleware:
    """Answers ``GET`` (and ``HEAD``) ``/docs.json`` with ``contract_spec(service)``; passes everything else on.
    Registered after the auth middleware, so the document is public or not as ``RoutePolicy`` says."""

    def __init__(self, app: ASGIApp, *, service: Any, policy: RoutePolicy = DEFAULT_POLICY) -> None:
        self.app = app
        self.service = service
        self.policy = policy
        self._body: bytes | None = None

    def body(self) -> bytes:
        if self._body is None:
            self._body = json.dumps(contract_spec(self.service, self.policy)).encode()
        return self._body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != SPEC_PATH or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        body = self.body()
        headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})
