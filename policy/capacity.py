"""Capacity planning: how many reviews a team does, where today's cut-off falls, and staffing.

Arithmetic: daily review minutes = investigators × shift hours × productive share × 60. With a case
mix (shares by entity type) the mean handle time is the mix-weighted handle time, so reviews per day =
daily review minutes ÷ mean handle time, split by the mix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from policy.cases import handle_minutes
from policy.config import TIER_NAMES, CapacityConfig, QueuePolicyConfig, SimulationConfig
from policy.ranking import QueuePolicy, RankedQueue, assign_tiers
from policy.simulation import simulate_queue
from triage.entities import ENTITIES


@dataclass(frozen=True)
class DailyCutoff:
    """Which part of a ranked queue the team reviews in one period.

    ``cutoff_priority``/``cutoff_expected_loss`` are those of the last case that fits (NaN when none
    does): cases ranked below it wait. ``backlog`` is what is left.
    """

    reviewed: int
    reviewed_by_type: dict[str, int]
    review_minutes_used: float
    capacity_minutes: float
    cutoff_priority: float
    cutoff_expected_loss: float
    expected_loss_reviewed: float
    expected_loss_waiting: float
    backlog: int
    backlog_by_tier: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class StaffingRecommendation:
    """Smallest team found meeting ``target`` SLA attainment on ``tiers`` (``None`` if none did).

    ``tried`` has one row per team size simulated: ``investigators``, ``attainment``,
    ``loss_prevented``, ``share_of_loss_prevented``.
    """

    investigators: int | None
    attainment: float
    target: float
    tiers: tuple[str, ...]
    workload_lower_bound: int
    tried: pd.DataFrame = field(repr=False)


def _normalised_mix(case_mix: Mapping[str, float]) -> dict[str, float]:
    unknown = set(case_mix) - set(ENTITIES.names())
    if unknown:
        raise ValueError(f"unknown entity types in case mix: {sorted(unknown)}")
    total = float(sum(case_mix.values()))
    if total <= 0 or any(v < 0 for v in case_mix.values()):
        raise ValueError("case mix must be non-negative with a positive total")
    return {name: float(case_mix.get(name, 0.0)) / total for name in ENTITIES.names()}


class CapacityPlanner:
    """Review throughput, daily cut-off and backlog projection for one team."""

    def __init__(self, capacity: CapacityConfig, config: QueuePolicyConfig | None = None) -> None:
        self.capacity = capacity
        self.config = config if config is not None else QueuePolicyConfig()

    @property
    def review_minutes_per_day(self) -> float:
        return self.capacity.review_minutes_per_day

    def mean_handle_minutes(self, case_mix: Mapping[str, float]) -> float:
        mix = _normalised_mix(case_mix)
        return sum(share * self.config.handle_minutes.minutes(name) for name, share in mix.items())

    def reviews_per_day(self, case_mix: Mapping[str, float]) -> dict[str, float]:
        """Reviews per day by entity type for a case mix (shares or counts), plus ``total``."""
        mix = _normalised_mix(case_mix)
        total = self.review_minutes_per_day / self.mean_handle_minutes(mix)
        out = {name: total * share for name, share in mix.items()}
        out["total"] = total
        return out

    def daily_cutoff(self, ranked: RankedQueue, hours: float = 24.0) -> DailyCutoff:
        """How far down ``ranked`` the team gets in ``hours`` (strictly in ranked order)."""
        capacity_minutes = self.review_minutes_per_day * hours / 24.0
        minutes = handle_minutes(ranked.entity_type, self.config.handle_minutes)
        worked = np.cumsum(minutes)
        n_done = int(np.searchsorted(worked, capacity_minutes + 1e-9, side="right"))
        done_types = pd.Series(ranked.entity_type[:n_done], dtype=object).value_counts()
        left_tiers = pd.Series(ranked.tier[n_done:], dtype=object).value_counts()
        last = n_done - 1
        return DailyCutoff(
            reviewed=n_done,
            reviewed_by_type={name: int(done_types.get(name, 0)) for name in ENTITIES.names()},
            review_minutes_used=float(worked[last]) if n_done else 0.0,
            capacity_minutes=capacity_minutes,
            cutoff_priority=float(ranked.priority[last]) if n_done else math.nan,
            cutoff_expected_loss=float(ranked.expected_loss[last]) if n_done else math.nan,
            expected_loss_reviewed=float(ranked.expected_loss[:n_done].sum()),
            expected_loss_waiting=float(ranked.expected_loss[n_done:].sum()),
            backlog=len(ranked) - n_done,
            backlog_by_tier={name: int(left_tiers.get(name, 0)) for name in TIER_NAMES},
        )

    def project_backlog(
        self,
        daily_arrivals: Mapping[str, float],
        days: int,
        initial_backlog: Mapping[str, float] | None = None,
    ) -> pd.DataFrame:
        """Fluid projection of the backlog over ``days`` with constant daily arrivals by entity type.

        Work (in review minutes) arrives each day; the team clears up to its daily minutes; the rest
        carries over. Cases are counted with the arrivals' mix. Columns: ``day``, ``arrivals``,
        ``reviews``, ``backlog`` (cases at day end), ``backlog_review_hours``, ``utilisation``.
        Ignores expiry and burstiness, so it is a planning estimate, not a forecast.
        """
        mean_handle = self.mean_handle_minutes(daily_arrivals)
        arriving_cases = float(sum(daily_arrivals.values()))
        arriving_minutes = arriving_cases * mean_handle
        backlog_minutes = 0.0
        if initial_backlog:
            backlog_minutes = sum(
                count * self.config.handle_minutes.minutes(name) for name, count in initial_backlog.items()
            )
        capacity = self.review_minutes_per_day
        rows = []
        for day in range(days):
            workload = backlog_minutes + arriving_minutes
            done = min(workload, capacity)
            backlog_minutes = workload - done
            rows.append(
                {
                    "day": day,
                    "arrivals": arriving_cases,
                    "reviews": done / mean_handle,
                    "backlog": backlog_minutes / mean_handle,
                    "backlog_review_hours": backlog_minutes / 60.0,
                    "utilisation": done / capacity if capacity > 0 else math.nan,
                }
            )
        return pd.DataFrame(rows)

    def staff_for_workload(self, daily_cases: Mapping[str, float], max_utilisation: float = 0.85) -> int:
        """Fewest investigators whose review minutes cover ``daily_cases`` at ``max_utilisation``.

        Head-room below 100 % absorbs arrival bursts; queues at full utilisation grow without bound.
        """
        if not 0 < max_utilisation <= 1:
            raise ValueError("max_utilisation must be in (0, 1]")
        minutes = sum(count * self.config.handle_minutes.minutes(name) for name, count in daily_cases.items())
        per_investigator = self.capacity.shift_hours * self.capacity.productive_share * 60.0
        return math.ceil(minutes / (per_investigator * max_utilisation) - 1e-9)


def recommend_staff(
    arrivals: pd.DataFrame,
    policy: QueuePolicy,
    capacity: CapacityConfig,
    config: QueuePolicyConfig,
    start: datetime | pd.Timestamp,
    days: int,
    *,
    target: float = 0.95,
    tiers: tuple[str, ...] = ("P0", "P1"),
    simulation: SimulationConfig | None = None,
    max_investigators: int = 1_000,
) -> StaffingRecommendation:
    """Smallest number of investigators keeping SLA attainment on ``tiers`` at or above ``target``.

    Replays ``arrivals`` with ``simulate_queue`` (same policy, shift length and productive share as
    ``capacity``) for each candidate team size: doubling from a workload lower bound until the
    target is met, then bisecting. Assumes attainment does not fall as staff is added.
    """
    if not 0 < target <= 1:
        raise ValueError("target must be in (0, 1]")
    planner = CapacityPlanner(capacity, config)
    window_start = pd.Timestamp(start)
    arrived = arrivals["arrived_at"]
    window = arrivals.loc[(arrived >= window_start) & (arrived < window_start + pd.Timedelta(days=days))]
    counts = window.loc[_tiers_of(window, config).isin(tiers), "entity_type"].value_counts()
    daily: dict[str, float] = {name: float(counts.get(name, 0)) / days for name in ENTITIES.names()}
    lower_bound = max(1, planner.staff_for_workload(daily, max_utilisation=1.0))
    cache: dict[int, tuple[float, float, float]] = {}

    def attainment(investigators: int) -> float:
        if investigators not in cache:
            team = capacity.model_copy(update={"investigators": investigators})
            result = simulate_queue(arrivals, policy, team, config, start, days, simulation=simulation)
            value = result.sla_attainment(tiers)
            cache[investigators] = (
                1.0 if math.isnan(value) else value,
                result.totals["loss_prevented"],
                result.totals["share_of_loss_prevented"],
            )
        return cache[investigators][0]

    # ``low`` is the largest size known (or assumed, for 0) to miss the target.
    low, high = 0, min(lower_bound, max_investigators)
    while attainment(high) < target and high < max_investigators:
        low, high = high, min(high * 2, max_investigators)
    found = attainment(high) >= target
    if found:
        while high - low > 1:
            middle = (low + high) // 2
            if attainment(middle) >= target:
                high = middle
            else:
                low = middle
    tried = pd.DataFrame(
        [
            {"investigators": k, "attainment": a, "loss_prevented": lp, "share_of_loss_prevented": s}
            for k, (a, lp, s) in sorted(cache.items())
        ]
    )
    return StaffingRecommendation(
        investigators=high if found else None,
        attainment=cache[high][0],
        target=target,
        tiers=tuple(tiers),
        workload_lower_bound=lower_bound,
        tried=tried,
    )


def _tiers_of(arrivals: pd.DataFrame, config: QueuePolicyConfig) -> pd.Series:
    index = assign_tiers(
        arrivals["probability"].to_numpy(dtype=float), arrivals["exposure"].to_numpy(dtype=float), config
    )
    return pd.Series(np.asarray(TIER_NAMES, dtype=object)[index], index=arrivals.index)
