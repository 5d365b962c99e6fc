"""The product's own service (`serving.service:TriageService`) with one choice changed at a time, switched by
environment variables read when bentoml imports this module. Patching the product's object rather than
copying its file keeps the variants in step with the service as it changes; each switch undoes or changes one
decision the shipped service made, so the benchmark shows what that decision is worth.

- BENCH_WORKERS=N          worker processes (shipped: 2)
- BENCH_BENTOML_TIMERS=1   leave BentoML's per-request timeout timers alive after the request (shipped: cancelled,
                           serving/framework.py)
- BENCH_NO_GC_FREEZE=1     no `gc.freeze()` after start-up (shipped: frozen)
- BENCH_ACCESS_LOG=1       BentoML's per-request access log on (shipped: off)
- BENCH_ASYNCIO_H11=1      uvicorn on the asyncio loop and the h11 parser (shipped: uvloop and httptools)
- BENCH_TRACE_SCORING=1    OpenTelemetry spans for the scoring endpoints too (shipped: excluded)

`bentoml serve benchmarks.variants.service:TriageService`
"""

from __future__ import annotations

import os
from typing import Any

import serving.framework
from serving.service import TriageService


def _flag(name: str) -> bool:
    return os.environ.get(name, "0") == "1"


def _force_asyncio_h11() -> None:
    # BentoML's worker builds uvicorn.Config after importing this module and passes neither `loop` nor `http`
    import uvicorn

    original = uvicorn.Config.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **(kwargs | {"loop": "asyncio", "http": "h11"}))

    uvicorn.Config.__init__ = init  # type: ignore[method-assign]


def apply(service: Any) -> Any:
    if _flag("BENCH_BENTOML_TIMERS"):
        serving.framework.cancel_request_timers_when_done = lambda: False  # type: ignore[assignment]
    if _flag("BENCH_NO_GC_FREEZE"):
        serving.framework.freeze_startup_heap = lambda: None  # type: ignore[assignment]
    if _flag("BENCH_ACCESS_LOG"):
        service.config["logging"] = {"access": {"enabled": True}}
    if _flag("BENCH_ASYNCIO_H11"):
        _force_asyncio_h11()
    if _flag("BENCH_TRACE_SCORING"):
        service.config["tracing"] = {"excluded_urls": None}
    if "BENCH_WORKERS" in os.environ:
        service.config["workers"] = int(os.environ["BENCH_WORKERS"])
    return service


apply(TriageService)
