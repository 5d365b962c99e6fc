"""The peer baseline: a minimal FastAPI app running the product's own code, so that product ÷ peer measures
the serving framework and nothing else. `uvicorn benchmarks.peer_app:app`.

It builds the service's own class outside BentoML (`TriageService.inner()`: the same settings, champion
loading, scoring log, audit writer and start-up adjustments) and calls its `_score` method, which is the
whole of what `/score_listings` does once BentoML has parsed the request: validation happens in FastAPI's
request model (the same generated `RECORD_MODELS["listing"]`), then scoring, shadow scoring, the scoring log, the audit
entry and the response model. Auth is off, as in the benchmark's BentoML runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from serving.schemas import MAX_RECORDS_PER_REQUEST, MAX_TOP_REASONS, RECORD_MODELS, ReasonsMode, ScoreResponse

ListingRecord: Any = RECORD_MODELS["listing"]  # the listing request model, generated from its fields


class ListingRequest(BaseModel):
    listings: Annotated[list[ListingRecord], Field(min_length=1, max_length=MAX_RECORDS_PER_REQUEST)]
    reasons: ReasonsMode = ReasonsMode.QUEUED
    top_reasons: Annotated[int, Field(ge=1, le=MAX_TOP_REASONS)] = 3


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    from serving.service import TriageService

    service = TriageService.inner()  # type: ignore[attr-defined]
    app.state.service = service
    try:
        yield
    finally:
        service._shutdown()


app = FastAPI(lifespan=lifespan)


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/score_listings")
async def score_listings(body: ListingRequest, request: Request) -> ScoreResponse:
    from serving.auth import ANONYMOUS

    score: ScoreResponse = request.app.state.service._score(
        "listing", body.listings, body.reasons, body.top_reasons, ANONYMOUS)
    return score
