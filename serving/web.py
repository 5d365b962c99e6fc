"""The reviewer page: a static folder (`serving/ui/`, plain HTML/CSS/JS, no build step, no CDN) served as a
small Starlette app that the BentoML service mounts at `/ui`:

    from serving.web import ui_app

    @bentoml.asgi_app(ui_app(), path="/ui")
    @bentoml.service(...)
    class TriageService: ...

The page calls the service's own `/queue`, `/case` and `/feedback` endpoints on the same origin, so it needs
no configuration. Responses carry a strict Content-Security-Policy (everything from this origin only)."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UI_DIR = Path(__file__).resolve().parent / "ui"
"""The page's files: index.html, app.js, style.css."""

SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # small files that change with each release: always revalidate (StaticFiles answers 304 when unchanged)
    "cache-control": "no-cache",
}


class _SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every HTTP response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def ui_app(directory: Path = UI_DIR) -> Starlette:
    """The Starlette app serving the reviewer page; `/` inside the mount answers with index.html."""
    if not (directory / "index.html").is_file():
        raise FileNotFoundError(f"reviewer page not found: {directory / 'index.html'}")
    static = StaticFiles(directory=directory, html=True)
    return Starlette(routes=[Mount("/", app=_SecurityHeaders(static), name="ui")])
