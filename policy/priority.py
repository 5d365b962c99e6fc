"""Queue policies: the expected-loss policy and the baselines it is compared with.

All share one interface, ``rank(cases, now) -> RankedQueue`` (see ``policy.ranking``), the same
tiering rule and the same SLA due times; they differ only in the order they review cases.

- ``ExpectedLossPolicy``: calibrated probability × exposure (expected loss prevented), boosted as the
  SLA deadline nears.
- ``FifoPolicy``: oldest first.
- ``ProbabilityPolicy``: probability only (what a team does with a score but no exposure).
- ``RulesBaselinePolicy``: hand-written ops rules on raw columns (``policy.rules``).
- ``OraclePolicy``: the expected-loss policy fed the true probability and true exposure; an upper
  reference, only usable in simulation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from policy.config import QueuePolicyConfig
from policy.ranking import CaseTiming, PolicyScores, RankingPolicy
from policy.rules import RulesBaselineConfig, RulesBaselinePolicy
from triage.entities import group_types

__all__ = [
    "ExpectedLossPolicy",
    "FifoPolicy",
    "OraclePolicy",
    "ProbabilityPolicy",
    "RulesBaselineConfig",
    "RulesBaselinePolicy",
]


def _group_suffix(cases: pd.DataFrame) -> np.ndarray:
    """' (group of N)' for group cases that list their members, '' otherwise."""
    suffix = np.full(len(cases), "", dtype=object)
    if "members" not in cases.columns:
        return suffix
    is_group = cases["entity_type"].isin(group_types()).to_numpy()
    if is_group.any():
        sizes = cases.loc[is_group, "members"].map(lambda m: len(m) if hasattr(m, "__len__") else 0)
        suffix[is_group] = [f" (group of {n})" if n else "" for n in sizes]
    return suffix


def _expected_loss_explainer(
    label: str, probability: np.ndarray, exposure: np.ndarray, suffix: np.ndarray
) -> PolicyScores:
    value = probability * exposure

    def explain(rows: np.ndarray) -> list[str]:
        return [
            f"{label} {v:,.0f} (p={p:.2f} × exposure {x:,.0f}){s}"
            for v, p, x, s in zip(value[rows], probability[rows], exposure[rows], suffix[rows], strict=True)
        ]

    return PolicyScores(value=value, explain=explain)


class ExpectedLossPolicy(RankingPolicy):
    """Priority = probability × exposure (expected loss prevented) × SLA urgency boost.

    Cases are re-ranked on every call with whatever ``probability``/``exposure`` the frame holds now,
    so a re-scored case moves immediately; its ``enqueued_at`` (and so its SLA clock) is unchanged.
    """

    name = "expected_loss"

    def __init__(self, config: QueuePolicyConfig | None = None, *, urgency: bool = True) -> None:
        super().__init__(config, urgency=urgency)

    def score(self, cases: pd.DataFrame, timing: CaseTiming) -> PolicyScores:
        probability = np.clip(cases["probability"].to_numpy(dtype=float), 0.0, 1.0)
        exposure = np.clip(cases["exposure"].to_numpy(dtype=float), 0.0, None)
        return _expected_loss_explainer("expected loss", probability, exposure, _group_suffix(cases))


class OraclePolicy(RankingPolicy):
    """The expected-loss policy with ``true_prob`` × ``true_exposure`` in place of the model's.

    Tiers and SLA due times still come from the model scores (they are case obligations shared by
    every policy), so the oracle differs from ``ExpectedLossPolicy`` only in the values it ranks by.
    """

    name = "oracle"
    extra_columns = ("true_prob", "true_exposure")

    def __init__(self, config: QueuePolicyConfig | None = None, *, urgency: bool = True) -> None:
        super().__init__(config, urgency=urgency)

    def score(self, cases: pd.DataFrame, timing: CaseTiming) -> PolicyScores:
        probability = np.clip(cases["true_prob"].to_numpy(dtype=float), 0.0, 1.0)
        exposure = np.clip(cases["true_exposure"].to_numpy(dtype=float), 0.0, None)
        return _expected_loss_explainer("true expected loss", probability, exposure, _group_suffix(cases))


class ProbabilityPolicy(RankingPolicy):
    """Most likely violations first, ignoring how much each would cost."""

    name = "probability"

    def score(self, cases: pd.DataFrame, timing: CaseTiming) -> PolicyScores:
        probability = np.clip(cases["probability"].to_numpy(dtype=float), 0.0, 1.0)

        def explain(rows: np.ndarray) -> list[str]:
            return [f"probability {p:.2f}" for p in probability[rows]]

        return PolicyScores(value=probability, explain=explain)


class FifoPolicy(RankingPolicy):
    """First in, first out: the oldest case is reviewed first; scores are ignored."""

    name = "fifo"

    def __init__(self, config: QueuePolicyConfig | None = None) -> None:
        # An urgency boost would not change a FIFO order, so it is always off.
        super().__init__(config, urgency=False)

    def score(self, cases: pd.DataFrame, timing: CaseTiming) -> PolicyScores:
        # Older is better; shift so the value is non-negative like every other policy's.
        waited = timing.elapsed_hours - timing.elapsed_hours.min() if len(cases) else timing.elapsed_hours
        elapsed = timing.elapsed_hours

        def explain(rows: np.ndarray) -> list[str]:
            return [f"waiting {h:,.0f} h (first in, first out)" for h in elapsed[rows]]

        return PolicyScores(value=waited, explain=explain)
