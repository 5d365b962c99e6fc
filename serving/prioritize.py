"""`POST /prioritize`: re-score a set of open cases with the current champion and rank them by the queue
policy (expected loss raised as the SLA nears)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from policy import ExpectedLossPolicy
from serving.cases import QueueFilter, build_cases, bundle_groups, rank_cases
from serving.schemas import PrioritizeResponse
from serving.scorers import ScorerSet
from serving.scoring import log_entries, score_batch
from stores.scoring_log import ScoringLogWriter


def prioritize_cases(
    scorers: ScorerSet, policy: ExpectedLossPolicy, queued_by_entity: Mapping[str, Sequence[Any]], limit: int,
    score_log: ScoringLogWriter,
) -> PrioritizeResponse:
    """`queued_by_entity`: per scored entity type, its `QUEUED_MODELS` cases (record + enqueued_at)."""
    now = datetime.now(UTC)
    parts = []
    for entity, queued in queued_by_entity.items():
        if not queued:
            continue
        champion = scorers.champions[entity]
        batch = score_batch(champion, [q.record.model_dump() for q in queued])
        score_log.submit(log_entries(champion, batch, "champion", True, None, now))
        ids = [str(i) for i in batch.ids]
        parts.append(pd.DataFrame({
            "entity_type": entity,
            "entity_id": ids,
            "case_id": [f"{entity}:{i}" for i in ids],
            "enqueued_at": [q.enqueued_at or now for q in queued],
            "probability": batch.probability,
            "exposure": batch.exposure,
            "tier": batch.tier,
            "model_name": champion.name,
            "model_version": champion.version,
            "same_schema": True,
            "matrix_row": list(batch.matrix),
        }))
    if not parts:
        return PrioritizeResponse(generated_at=now, model_versions={e: s.version for e, s in scorers.champions.items()},
                                  cases=[])
    cases = pd.concat(parts, ignore_index=True)
    duplicated = cases["case_id"].duplicated(keep="last")
    if duplicated.any():
        # the same entity sent twice is one case: keep its latest record, but its earliest enqueue time
        first_enqueued = cases.groupby("case_id")["enqueued_at"].transform("min")
        cases = cases.assign(enqueued_at=first_enqueued).loc[~duplicated].reset_index(drop=True)
    cases["enqueued_at"] = pd.to_datetime(cases["enqueued_at"], utc=True)
    cases = bundle_groups(cases, scorers)
    ranked = rank_cases(cases, policy, now)
    versions = {e: s.version for e, s in scorers.champions.items()}
    return PrioritizeResponse(
        generated_at=now, model_versions=versions,
        cases=build_cases(cases, ranked, scorers, QueueFilter(limit=limit)),
    )


