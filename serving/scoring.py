"""Scoring a validated request: plain functions over the loaded artifact, free of any web framework."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.registry import LoadedScorer
from serving.schemas import ModelRef, Reason, ReasonsMode, ScoredEntity, ScoreResponse

QUEUED_TIERS = ("P0", "P1", "P2")


def rows_needing_reasons(tiers: np.ndarray, mode: ReasonsMode) -> list[int]:
    if mode is ReasonsMode.NONE:
        return []
    if mode is ReasonsMode.ALL:
        return list(range(len(tiers)))
    return [i for i, tier in enumerate(tiers) if tier in QUEUED_TIERS]


def score_records(
    scorer: LoadedScorer, records: Sequence[Mapping[str, Any]], mode: ReasonsMode, top_reasons: int
) -> ScoreResponse:
    artifact = scorer.artifact
    # one thread: a request's batch is small and the second core serves the next request
    batch = artifact.score_records(records, num_threads=1)
    rows = rows_needing_reasons(batch.tier, mode)
    reasons = dict(zip(rows, artifact.reasons(batch, rows, top_k=top_reasons), strict=True))
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
        for i in range(len(records))
    ]
    return ScoreResponse(model=ModelRef(name=scorer.name, version=scorer.version, alias=scorer.alias), results=results)
