"""What every queue policy shares: tier assignment, the SLA urgency boost, and the ranked queue.

A policy only has to say how valuable each case is (``RankingPolicy.score``); ranking, tiers, due
times and reasons are computed here the same way for all policies, so policies differ only in order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Protocol

import numpy as np
import pandas as pd

from policy.cases import CASE_COLUMNS, ns_to_utc, timestamps_ns, utc_now_ns, validate_cases
from policy.config import TIER_NAMES, QueuePolicyConfig, UrgencyBoostConfig

_NS_PER_HOUR = 3_600 * 10**9

# Takes positions into the input frame, returns the policy-specific head of each reason.
Explainer = Callable[[np.ndarray], list[str]]


def assign_tiers(probability: np.ndarray, exposure: np.ndarray, config: QueuePolicyConfig) -> np.ndarray:
    """Tier index per case (0 = P0 … 3 = P3) from model probability × exposure thresholds.

    See ``policy.config`` for why tiers are absolute thresholds on the model's expected loss.
    """
    probability = np.asarray(probability, dtype=float)
    expected_loss = probability * np.asarray(exposure, dtype=float)
    tier = np.full(probability.shape, len(TIER_NAMES) - 1, dtype=np.int8)
    # Walk from the lowest tier up so the highest tier a case qualifies for wins.
    for index in range(len(TIER_NAMES) - 2, -1, -1):
        rule = config.tiers[TIER_NAMES[index]]
        meets = (expected_loss >= rule.min_expected_loss) & (probability >= rule.min_probability)
        tier[meets] = index
    return tier


def tier_sla_hours(tier_index: np.ndarray, config: QueuePolicyConfig) -> np.ndarray:
    table = np.array([config.sla_hours(name) for name in TIER_NAMES])
    return table[tier_index]


def urgency_boost(elapsed_hours: np.ndarray, sla_hours: np.ndarray, config: UrgencyBoostConfig) -> np.ndarray:
    """Priority multiplier ≥ 1 that grows as the SLA deadline nears, capped at ``max_boost``."""
    used = np.asarray(elapsed_hours, dtype=float) / np.asarray(sla_hours, dtype=float)
    ramp = np.clip((used - config.start_fraction) / (1.0 - config.start_fraction), 0.0, 1.0)
    return 1.0 + (config.max_boost - 1.0) * ramp**config.power


@dataclass(frozen=True)
class CaseTiming:
    """Per-case SLA facts at ranking time, in input-frame order."""

    enqueued_ns: np.ndarray
    tier_index: np.ndarray
    sla_hours: np.ndarray
    elapsed_hours: np.ndarray
    boost: np.ndarray

    @property
    def due_ns(self) -> np.ndarray:
        return self.enqueued_ns + np.round(self.sla_hours * _NS_PER_HOUR).astype(np.int64)


@dataclass(frozen=True)
class PolicyScores:
    """What a policy says about each case (input-frame order): a non-negative value, higher first."""

    value: np.ndarray
    explain: Explainer


@dataclass(frozen=True, eq=False)
class RankedQueue:
    """A ranked queue. Arrays are in ranked order (best first); ``order`` maps back to input rows."""

    policy: str
    now: pd.Timestamp
    order: np.ndarray
    case_id: np.ndarray
    entity_type: np.ndarray
    tier: np.ndarray
    priority: np.ndarray
    expected_loss: np.ndarray
    urgency_boost: np.ndarray
    enqueued_ns: np.ndarray
    due_ns: np.ndarray
    _explain: Explainer = field(repr=False)

    def __len__(self) -> int:
        return len(self.order)

    @property
    def hours_to_due(self) -> np.ndarray:
        return (self.due_ns - utc_now_ns(self.now)) / _NS_PER_HOUR

    def reasons(self, top: int | None = None) -> list[str]:
        """Short human-readable reason for each position (only the first ``top`` if given)."""
        n = len(self) if top is None else min(top, len(self))
        heads = self._explain(self.order[:n])
        hours = self.hours_to_due[:n]
        out: list[str] = []
        for head, tier, due_in, boost in zip(heads, self.tier[:n], hours, self.urgency_boost[:n], strict=True):
            sla = f"SLA {tier} due in {due_in:,.0f} h" if due_in >= 0 else f"SLA {tier} overdue by {-due_in:,.0f} h"
            urgency = f"; urgency ×{boost:.1f}" if boost > 1.05 else ""
            out.append(f"{head}; {sla}{urgency}")
        return out

    def to_frame(self, top: int | None = None, explain: bool = True) -> pd.DataFrame:
        """The ranked queue as a frame, one row per case, best first.

        Columns: ``rank`` (1 = review first), ``case_id``, ``entity_type``, ``tier``, ``priority``
        (the policy's sort key after the urgency boost), ``expected_loss`` (model probability ×
        exposure), ``urgency_boost``, ``enqueued_at``, ``sla_due_at``, ``hours_to_due``, ``row``
        (position in the input frame) and, with ``explain``, ``reason``.
        """
        n = len(self) if top is None else min(top, len(self))
        frame = pd.DataFrame(
            {
                "rank": np.arange(1, n + 1),
                "case_id": self.case_id[:n],
                "entity_type": self.entity_type[:n],
                "tier": self.tier[:n],
                "priority": self.priority[:n],
                "expected_loss": self.expected_loss[:n],
                "urgency_boost": self.urgency_boost[:n],
                "enqueued_at": ns_to_utc(self.enqueued_ns[:n]),
                "sla_due_at": ns_to_utc(self.due_ns[:n]),
                "hours_to_due": self.hours_to_due[:n],
                "row": self.order[:n],
            }
        )
        if explain:
            frame["reason"] = self.reasons(n)
        return frame

    @cached_property
    def frame(self) -> pd.DataFrame:
        return self.to_frame()


class QueuePolicy(Protocol):
    """Anything that ranks a case frame. ``input_columns`` are the columns ``rank`` reads."""

    name: str

    @property
    def input_columns(self) -> tuple[str, ...]: ...

    def rank(self, cases: pd.DataFrame, now: datetime | pd.Timestamp) -> RankedQueue: ...


class RankingPolicy(ABC):
    """Base class: subclasses implement ``score``; ranking, tiers, due times and reasons are shared.

    With ``urgency=True`` the policy's value is multiplied by the SLA urgency boost before sorting.
    Ties are broken by the older ``enqueued_at`` first, then by input order, so ranking is
    deterministic.
    """

    name: str = "policy"
    extra_columns: tuple[str, ...] = ()

    def __init__(self, config: QueuePolicyConfig | None = None, *, urgency: bool = False) -> None:
        self.config = config if config is not None else QueuePolicyConfig()
        self.urgency = urgency

    @property
    def input_columns(self) -> tuple[str, ...]:
        optional = ("risk_type", "members")
        return CASE_COLUMNS + tuple(c for c in self.extra_columns if c not in CASE_COLUMNS) + optional

    @abstractmethod
    def score(self, cases: pd.DataFrame, timing: CaseTiming) -> PolicyScores:
        """Non-negative value per case (input order); higher is reviewed first."""

    def timing(self, cases: pd.DataFrame, now: datetime | pd.Timestamp) -> CaseTiming:
        enqueued = timestamps_ns(cases["enqueued_at"])
        tier_index = assign_tiers(
            cases["probability"].to_numpy(dtype=float), cases["exposure"].to_numpy(dtype=float), self.config
        )
        sla = tier_sla_hours(tier_index, self.config)
        elapsed = (utc_now_ns(now) - enqueued) / _NS_PER_HOUR
        boost = urgency_boost(elapsed, sla, self.config.urgency)
        return CaseTiming(enqueued, tier_index, sla, elapsed, boost)

    def rank(self, cases: pd.DataFrame, now: datetime | pd.Timestamp) -> RankedQueue:
        """Rank the open cases at time ``now`` (tz-aware). See ``policy.cases`` for the columns."""
        validate_cases(cases)
        missing = [c for c in self.extra_columns if c not in cases.columns]
        if missing:
            raise ValueError(f"{self.name} needs columns {missing}")
        timing = self.timing(cases, now)
        scores = self.score(cases, timing)
        value = np.asarray(scores.value, dtype=float)
        applied_boost = timing.boost if self.urgency else np.ones_like(value)
        priority = value * applied_boost
        positions = np.arange(len(cases))
        order = np.lexsort((positions, timing.enqueued_ns, -priority))
        expected_loss = cases["probability"].to_numpy(dtype=float) * cases["exposure"].to_numpy(dtype=float)
        return RankedQueue(
            policy=self.name,
            now=pd.Timestamp(now),
            order=order,
            case_id=cases["case_id"].to_numpy()[order],
            entity_type=cases["entity_type"].to_numpy()[order],
            tier=np.asarray(TIER_NAMES, dtype=object)[timing.tier_index[order]],
            priority=priority[order],
            expected_loss=expected_loss[order],
            urgency_boost=applied_boost[order],
            enqueued_ns=timing.enqueued_ns[order],
            due_ns=timing.due_ns[order],
            _explain=scores.explain,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(urgency={self.urgency})"
