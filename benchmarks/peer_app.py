"""The peer baseline: a minimal FastAPI app over the same request schema and the same
`serving.scoring.score_records`, loading the same champion from the same MLflow store.
`uvicorn benchmarks.peer_app:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from serving.schemas import MAX_RECORDS_PER_REQUEST, MAX_TOP_REASONS, ListingRecord, ReasonsMode, ScoreResponse
from serving.scoring import score_records


class ListingRequest(BaseModel):
    listings: Annotated[list[ListingRecord], Field(min_length=1, max_length=MAX_RECORDS_PER_REQUEST)]
    reasons: ReasonsMode = ReasonsMode.QUEUED
    top_reasons: Annotated[int, Field(ge=1, le=MAX_TOP_REASONS)] = 3


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    from mlflow import MlflowClient

    from models.registry import load_scorer
    from triage.settings import TriageSettings

    settings = TriageSettings()
    client = MlflowClient(settings.tracking_uri)
    app.state.listing_scorer = load_scorer(client, settings.model_name("listing"), alias=settings.serving_alias)
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/score_listings")
async def score_listings(body: ListingRequest, request: Request) -> ScoreResponse:
    scorer = request.app.state.listing_scorer
    return score_records(scorer, [r.model_dump() for r in body.listings], body.reasons, body.top_reasons)
