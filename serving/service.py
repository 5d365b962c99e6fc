"""The BentoML service: loads the champion scorers once at start-up from the MLflow registry named by the
settings, and scores listings and accounts over HTTP. `bentoml serve serving.service:TriageService`."""

from __future__ import annotations

from typing import Annotated

import bentoml
from pydantic import Field

from serving.schemas import (
    MAX_RECORDS_PER_REQUEST,
    MAX_TOP_REASONS,
    AccountRecord,
    ListingRecord,
    ReasonsMode,
    ScoreResponse,
)
from serving.scoring import score_records

Listings = Annotated[
    list[ListingRecord],
    Field(min_length=1, max_length=MAX_RECORDS_PER_REQUEST, description="1 to 1,000 listings"),
]
Accounts = Annotated[
    list[AccountRecord],
    Field(min_length=1, max_length=MAX_RECORDS_PER_REQUEST, description="1 to 1,000 accounts"),
]
TopReasons = Annotated[int, Field(ge=1, le=MAX_TOP_REASONS, description="Reasons per result")]


@bentoml.service(name="triage", workers=1, traffic={"timeout": 30})
class TriageService:
    def __init__(self) -> None:
        from mlflow import MlflowClient

        from models.registry import load_scorer
        from triage.settings import TriageSettings

        settings = TriageSettings()
        client = MlflowClient(settings.tracking_uri)
        alias = settings.serving_alias
        self.listing_scorer = load_scorer(client, settings.model_name("listing"), alias=alias)
        self.account_scorer = load_scorer(client, settings.model_name("account"), alias=alias)

    @bentoml.api
    async def score_listings(
        self, listings: Listings, reasons: ReasonsMode = ReasonsMode.QUEUED, top_reasons: TopReasons = 3
    ) -> ScoreResponse:
        """Score 1–1,000 listings. Each result: calibrated probability, score 0–100, tier, exposure, expected
        loss and, for the cases that enter the queue (or as `reasons` asks), the top reasons."""
        return score_records(self.listing_scorer, [r.model_dump() for r in listings], reasons, top_reasons)

    @bentoml.api
    async def score_accounts(
        self, accounts: Accounts, reasons: ReasonsMode = ReasonsMode.QUEUED, top_reasons: TopReasons = 3
    ) -> ScoreResponse:
        """Score 1–1,000 seller or creator accounts (same result contract as `score_listings`)."""
        return score_records(self.account_scorer, [r.model_dump() for r in accounts], reasons, top_reasons)
