"""Two adjustments to the serving framework's runtime, each measured in benchmarks/ before adoption.

1. BentoML 1.4's `TimeoutMiddleware` schedules a `loop.call_later(timeout, ...)` per request and never cancels
   it, so every finished request's waiter future (and what it references) stays alive on the event loop for
   `traffic.timeout` seconds. Under load the live heap grows by thousands of requests, and each garbage
   collection walks it: pauses of hundreds of milliseconds stall every request in the worker. The
   replacement below is the same middleware with the timer cancelled once the request has finished.
2. `gc.freeze()` after start-up moves the long-lived start-up heap (models, MLflow, SQLAlchemy, pydantic
   schemas) out of the collector's reach, so the collections that do run only walk request garbage.

Both run when the service starts in a worker, never at import time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from bentoml._internal.server.http.traffic import TimeoutMiddleware
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
