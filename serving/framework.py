"""Adjustments to the serving framework's runtime (the first two measured in benchmarks/ before adoption).

1. BentoML 1.4's `TimeoutMiddleware` schedules a `loop.call_later(timeout, ...)` per request and never cancels
   it, so every finished request's waiter future (and what it references) stays alive on the event loop for
   `traffic.timeout` seconds. Under load the live heap grows by thousands of requests, and each garbage
   collection walks it: pauses of hundreds of milliseconds stall every request in the worker. The
   replacement below is the same middleware with the timer cancelled once the request has finished.
2. `gc.freeze()` after start-up moves the long-lived start-up heap (models, MLflow, SQLAlchemy, pydantic
   schemas) out of the collector's reach, so the collections that do run only walk request garbage.
3. BentoML logs every request it answers 400 at ERROR with a traceback, and the traceback's last line is the
   pydantic error with the submitted values (``input_value=...``): a client's mistake looked like a server
   fault and copied request data (ids, prices, notes) into the log. A logging filter (standard logging, no
   patch) turns those records into one INFO line naming the field locations and error types only.

All run when the service starts in a worker, never at import time.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from typing import Any

from bentoml._internal.server import http_app
from bentoml._internal.server.http.traffic import TimeoutMiddleware
from bentoml.exceptions import BentoMLException
from pydantic import ValidationError
from starlette.responses import JSONResponse

log = logging.getLogger("triage.service")


async def _timeout_call_cancelling_timer(self: Any, scope: Any, receive: Any, send: Any) -> None:
    """BentoML's `TimeoutMiddleware.__call__` (1.4.x) plus `handle.cancel()` when the request is done."""

    if scope["type"] not in ("http", "websocket"):
        return await self.app(scope, receive, send)
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    handle = loop.call_later(self.timeout, self._set_timer_out, waiter)

    async def _send(message: Any) -> None:
        if not waiter.done():
            waiter.set_result(None)
        await send(message)

    fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
    try:
        await waiter
    except TimeoutError:
        if fut.cancel():
            response = JSONResponse({"error": f"Not able to process the request in {self.timeout} seconds"},
                                    status_code=504)
            await response(scope, receive, send)
    else:
        await fut
    finally:
        handle.cancel()
    return None


def cancel_request_timers_when_done() -> bool:
    """Install the timer-cancelling timeout middleware; False (and a log line) when BentoML's middleware is
    not the one this was written against, so an upgrade never silently runs a stale copy."""

    current = TimeoutMiddleware.__call__
    if current is _timeout_call_cancelling_timer:
        return True
    if not hasattr(TimeoutMiddleware, "_set_timer_out") or current.__qualname__ != "TimeoutMiddleware.__call__":
        log.warning("BentoML's TimeoutMiddleware changed; request timers are left as BentoML schedules them")
        return False
    TimeoutMiddleware.__call__ = _timeout_call_cancelling_timer  # type: ignore[method-assign]
    return True


def freeze_startup_heap() -> None:
    gc.collect()
    gc.freeze()


# What BentoML 1.4's `log_exception` logs (`_bentoml_impl/server/app.py` calls it for every error it answers).
BENTOML_ERROR_LOGGER = "bentoml._internal.server.http_app"
BENTOML_ERROR_MESSAGE = "Exception on %s [%s]"
MAX_ERRORS_LOGGED = 5
MAX_LOCATION_CHARS = 120


def client_error_status(exc: BaseException | None) -> int | None:
    """The 4xx status BentoML answers for this exception, or None for a server error."""
    if isinstance(exc, ValidationError):
        return 400
    if isinstance(exc, BentoMLException) and 400 <= exc.error_code.value < 500:
        return int(exc.error_code.value)
    return None


def describe_client_error(exc: BaseException) -> str:
    """Field locations and error types, never the submitted values; locations are JSON-escaped (a field name
    is client text: no newline reaches the log) and bounded."""
    if not isinstance(exc, ValidationError):
        return type(exc).__name__
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    shown = [f"{json.dumps(list(e['loc']))[:MAX_LOCATION_CHARS]} {e['type']}" for e in errors[:MAX_ERRORS_LOGGED]]
    more = f" and {len(errors) - MAX_ERRORS_LOGGED} more" if len(errors) > MAX_ERRORS_LOGGED else ""
    return f"{len(errors)} validation error(s): {', '.join(shown)}{more}"


class ClientErrorLogFilter(logging.Filter):
    """Rewrites BentoML's ERROR-with-traceback record for a 4xx answer into one INFO line without values.
    Records of any other shape (server errors, or a BentoML whose message changed) pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        status = client_error_status(exc)
        if status is None or exc is None or record.msg != BENTOML_ERROR_MESSAGE or not isinstance(record.args, tuple):
            return True
        path = record.args[0] if record.args else "?"
        record.msg, record.args = "client error %d on %s: %s", (status, path, describe_client_error(exc))
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def log_client_errors_briefly() -> bool:
    """Install ``ClientErrorLogFilter`` on BentoML's error logger; False (and a log line) when BentoML no longer
    logs through it, so an upgrade is noticed rather than silently logging values again."""
    logger = logging.getLogger(BENTOML_ERROR_LOGGER)
    if getattr(http_app, "logger", None) is not logger or not hasattr(http_app, "log_exception"):
        log.warning("BentoML's error logging changed; client errors are logged as BentoML logs them")
        return False
    if not any(isinstance(f, ClientErrorLogFilter) for f in logger.filters):
        logger.addFilter(ClientErrorLogFilter())
    return True
