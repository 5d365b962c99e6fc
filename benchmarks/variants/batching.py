"""Adaptive batching, measured rather than assumed: the product's own scoring (`TriageService.inner()._score`,
with its scoring log and audit) behind a BentoML `batchable` endpoint, so that concurrent one-record requests
are merged into one scoring call. `bentoml serve benchmarks.variants.batching:BatchingTriage`.

BENCH_MAX_BATCH (default 64) and BENCH_MAX_LATENCY_MS (default 10) set BentoML's batching bounds; one worker,
access log off, as the shipped service's one-worker variant.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml

from serving.schemas import RECORD_MODELS, ReasonsMode, ScoredEntity

ListingRecord: Any = RECORD_MODELS["listing"]  # the listing request model, generated from its fields


@bentoml.service(name="triage_batching", workers=1, traffic={"timeout": 30}, logging={"access": {"enabled": False}})
class BatchingTriage:
    def __init__(self) -> None:
        from serving.service import TriageService

        self.service: Any = TriageService.inner()  # type: ignore[attr-defined]

    @bentoml.api(batchable=True, max_batch_size=int(os.environ.get("BENCH_MAX_BATCH", "64")),
                 max_latency_ms=int(os.environ.get("BENCH_MAX_LATENCY_MS", "10")))
    async def score_listings(self, listings: list[ListingRecord]) -> list[ScoredEntity]:
        from serving.auth import ANONYMOUS

        response = self.service._score("listing", listings, ReasonsMode.NONE, 3, ANONYMOUS)
        return list(response.results)
