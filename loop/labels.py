"""The closed loop's label rules, in one place so retraining, shadow comparison and reports read decisions
the same way:

- label: outcome `violation` → 1, `no_violation` → 0; `escalate` is not a final answer and is excluded;
- one case per entity: the latest final decision; its score is the entity's latest score at or before that
  decision (`DecisionStore.decisions_with_scores`), so nothing logged after the decision is ever used;
- loss: the decision's `loss_amount`; a violation recorded without an amount counts its exposure estimate
  (as `training.evaluation` does for data without ground truth), so it is not treated as costless.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from stores.decisions import DecisionWithScore, Outcome
from stores.records import ScoreRecord

OUTCOME_LABELS: Mapping[Outcome, int] = {Outcome.VIOLATION: 1, Outcome.NO_VIOLATION: 0}


def outcome_label(outcome: Outcome) -> int | None:
    """1 for a confirmed violation, 0 for a cleared case, None for an escalation (no final answer yet)."""
    return OUTCOME_LABELS.get(Outcome(outcome))


@dataclass(frozen=True)
class DecidedCase:
    """A final decision on an entity with the score that entity had when it was decided."""

    decision_id: str
    entity_id: str
    decided_at: datetime
    label: int
    loss_amount: float
    score: ScoreRecord


@dataclass(frozen=True)
class DecidedCases:
    cases: list[DecidedCase]
    escalated: int  # entities whose only decisions were escalations
    superseded: int  # earlier final decisions replaced by a later one on the same entity
    unscored: int  # final decisions whose entity had no matching score at or before the decision


def decided_cases(rows: Iterable[DecisionWithScore], entity: str) -> DecidedCases:
    """One case per entity of type `entity`: its latest final decision, with the point-in-time score."""
    latest: dict[str, DecisionWithScore] = {}
    escalated: set[str] = set()
    superseded = 0
    for row in rows:
        decision = row.decision
        if decision.entity_type != entity:
            continue
        if outcome_label(decision.outcome) is None:
            escalated.add(decision.entity_id)
            continue
        before = latest.get(decision.entity_id)
        if before is not None:
            superseded += 1
            if (before.decision.decided_at, before.decision.decision_id) > (decision.decided_at, decision.decision_id):
                continue
        latest[decision.entity_id] = row
    cases: list[DecidedCase] = []
    unscored = 0
    for row in latest.values():
        label = outcome_label(row.decision.outcome)
        if row.score is None or label is None:
            unscored += row.score is None
            continue
        cases.append(DecidedCase(row.decision.decision_id, row.decision.entity_id, row.decision.decided_at, label,
                                 row.decision.loss_amount, row.score))
    cases.sort(key=lambda c: (c.decided_at, c.decision_id))
    return DecidedCases(cases, len(escalated - set(latest)), superseded, unscored)


def case_loss(label: np.ndarray, loss_amount: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    return np.where(label == 1, np.where(loss_amount > 0, loss_amount, exposure), 0.0)
