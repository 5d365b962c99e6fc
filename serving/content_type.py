"""Only JSON bodies reach the API endpoints: `415` for any other declared media type, as pure ASGI middleware.

BentoML 1.4 picks its parser from `Content-Type`: JSON, multipart or url-encoded forms, pickle, and JSON again
for any type it does not know. A malformed multipart body then fails inside Starlette's form parser and
answers 500, a `text/plain` body is parsed as JSON (what a cross-site HTML form or `fetch` sends without a
CORS preflight), and form bodies validate into confusing errors. The API is JSON only (docs/api.md), so the
media type is checked before any body is read. A request without `Content-Type` is read as JSON, as BentoML
does (clients such as `curl -d @file` from scripts rely on it).
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from serving.asgi import header_of, send_json

JSON_MEDIA_TYPE = "application/json"
MAX_SHOWN_MEDIA_TYPE = 100


def media_type(content_type: str) -> str:
    """`application/json; charset=utf-8` -> `application/json` (media types are case-insensitive)."""
    return content_type.split(";", 1)[0].strip().lower()


class JsonBodyMiddleware:
    """Answers `415 {"error": ...}` (with `Accept-Post: application/json`) to a POST on one of ``paths`` whose
    `Content-Type` is present and not `application/json`; everything else passes through untouched."""

    def __init__(self, app: ASGIApp, *, paths: Collection[str]) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and scope.get("path") in self.paths:
            declared = header_of(scope, b"content-type")
            if declared and media_type(declared) != JSON_MEDIA_TYPE:
                shown = media_type(declared)[:MAX_SHOWN_MEDIA_TYPE].encode("ascii", "replace").decode()
                await send_json(send, 415, {"error": f"unsupported Content-Type {shown}: send {JSON_MEDIA_TYPE}"},
                                {"accept-post": JSON_MEDIA_TYPE})
                return
        await self.app(scope, receive, send)
