"""Scoring a validated request: plain functions over the loaded artifact, free of any web framework."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from models.artifact import ScoreBatch
from models.registry import LoadedScorer
from serving.schemas import ModelRef, Reason, ReasonsMode, ScoredEntity, ScoreResponse
from stores.records import ModelAlias, ScoreRecord

QUEUED_TIERS = ("P0", "P1", "P2")


def rows_needing_reasons(tiers: np.ndarray, mode: ReasonsMode) -> list[int]:
    if mode is ReasonsMode.NONE:
        return []
    if mode is ReasonsMode.ALL:
        return list(range(len(tiers)))
    return [i for i, tier in enumerate(tiers) if tier in QUEUED_TIERS]


def log_entries(
    scorer: LoadedScorer, batch: ScoreBatch, alias: str, served: bool, request_id: str | None, now: datetime
) -> list[ScoreRecord]:
    """What the scoring log keeps of each result: the exact model row, so that retraining sees the features
    as they were when scored."""
    artifact = scorer.artifact
    return ScoreRecord.from_columns(
        scored_at=now, entity_type=artifact.entity, model_name=scorer.name,
        model_version=scorer.version, model_alias=ModelAlias(alias), served=served,
        feature_names_hash=artifact.schema_hash, request_id=request_id, entity_ids=[str(i) for i in batch.ids],
        probability=batch.probability, score=batch.score, tier=[str(t) for t in batch.tier],
        expected_loss=batch.expected_loss, features=batch.matrix, exposure=batch.exposure,
    )


def score_batch(scorer: LoadedScorer, records: Sequence[Mapping[str, Any]]) -> ScoreBatch:
    # one thread: a request's batch is small and the second core serves the next request
    return scorer.artifact.score_records(records, num_threads=1)


def score_response(scorer: LoadedScorer, batch: ScoreBatch, mode: ReasonsMode, top_reasons: int) -> ScoreResponse:
    artifact = scorer.artifact
    rows = rows_needing_reasons(batch.tier, mode)
    reasons = dict(zip(rows, scorer.reasons(batch.matrix[rows], top_k=top_reasons), strict=True))
    entity = artifact.entity
    results = [
        ScoredEntity(
            entity_id=str(batch.ids[i]),
            entity_type=entity,
            probability=float(batch.probability[i]),
            score=float(batch.score[i]),
            tier=str(batch.tier[i]),
            exposure=float(batch.exposure[i]),
            expected_loss=float(batch.expected_loss[i]),
            reasons=[Reason(**r.__dict__) for r in reasons[i]] if i in reasons else None,
        )
        for i in range(len(batch.ids))
    ]
    return ScoreResponse(model=ModelRef(name=scorer.name, version=scorer.version, alias=scorer.alias,
                                          reasons_attribution=scorer.attribution.value), results=results)


def score_records(
    scorer: LoadedScorer, records: Sequence[Mapping[str, Any]], mode: ReasonsMode, top_reasons: int
) -> ScoreResponse:
    return score_response(scorer, score_batch(scorer, records), mode, top_reasons)
