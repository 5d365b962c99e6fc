"""The product's own service (`serving.service:TriageService`) with proposed changes applied as patches,
switched by environment variables read when bentoml imports this module. Patching the product's object
rather than copying its file keeps the variants in step with the service as it changes.

- BENCH_CANCEL_TIMER=1  cancel BentoML's per-request timeout timer when the request ends (the timer otherwise
                        keeps the request's waiter future referenced by the event loop for `traffic.timeout` s)
- BENCH_GC_FREEZE=1     `gc.collect(); gc.freeze()` after the service's start-up, so collections skip the
                        long-lived start-up heap (models, MLflow, SQLAlchemy, pydantic schemas)
- BENCH_NO_DUMP=1       `model_dump()` replaced by the validated record's own `__dict__` (flat models: the same
                        values, no copy)
- BENCH_WORKERS=N       worker processes

`bentoml serve benchmarks.variants.service:TriageService`
"""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

from serving.service import TriageService


def _flag(name: str) -> bool:
    return os.environ.get(name, "0") == "1"


def patch_timeout_middleware() -> None:
    """BentoML 1.4's TimeoutMiddleware with one change: `handle.cancel()` once the request has finished
    (cancel drops the timer's references at once instead of after the timeout)."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware
    from starlette.responses import JSONResponse

    async def call(self: Any, scope: Any, receive: Any, send: Any) -> None:
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
                resp = JSONResponse({"error": f"Not able to process the request in {self.timeout} seconds"},
                                    status_code=504)
                await resp(scope, receive, send)
        else:
            await fut
        finally:
            handle.cancel()
        return None

    TimeoutMiddleware.__call__ = call  # type: ignore[method-assign]


def patch_gc_freeze(service: Any) -> None:
    inner = service.inner
    original = inner.__init__

    def init(self: Any) -> None:
        original(self)
        gc.collect()
        gc.freeze()

    inner.__init__ = init


def patch_no_dump(service: Any) -> None:
    inner = service.inner
    original = inner._score

    class _Dumped:
        # `_score` calls `model_dump()` on each record; hand it the record's field dict without a copy
        __slots__ = ("_values",)

        def __init__(self, record: Any) -> None:
            self._values = record.__dict__

        def model_dump(self) -> dict[str, Any]:
            return self._values

    def score(self: Any, entity: str, records: list[Any], reasons: Any, top_reasons: int) -> Any:
        return original(self, entity, [_Dumped(r) for r in records], reasons, top_reasons)

    inner._score = score


def apply(service: Any) -> Any:
    if _flag("BENCH_CANCEL_TIMER"):
        patch_timeout_middleware()
    if _flag("BENCH_GC_FREEZE"):
        patch_gc_freeze(service)
    if _flag("BENCH_NO_DUMP"):
        patch_no_dump(service)
    if "BENCH_WORKERS" in os.environ:
        service.config["workers"] = int(os.environ["BENCH_WORKERS"])
    return service


apply(TriageService)

__all__ = ["TriageService"]
