"""Replay case arrivals through a queue policy at a fixed investigator capacity.

Arrivals frame (one row per case):

| column | type | meaning |
|---|---|---|
| ``case_id`` | str | unique |
| ``entity_type`` | str | ``listing``, ``account`` or ``group`` (sets the handle time) |
| ``arrived_at`` | tz-aware timestamp | when the case enters the queue |
| ``probability`` | float | model score |
| ``exposure`` | float | model exposure estimate |
| ``true_prob`` | float | true violation probability (only the oracle reads it) |
| ``true_exposure`` | float | true ``exposure_if_violation`` (only the oracle reads it) |
| ``is_violation`` | bool | realised truth |
| ``loss_if_missed`` | float | ``is_violation × true_exposure``: the lifetime loss if never actioned |
| ``risk_type`` | str, optional | true risk type; sets the loss half-life (``SimulationConfig``) |
| raw columns, optional | | whatever the policy lists in ``input_columns`` (e.g. the rules baseline) |

Each step of ``SimulationConfig.step_hours``: cases that arrived by the step start join the open
queue; cases older than ``max_age_hours`` expire; the policy re-ranks all open cases; investigators
work down the ranking within the step's review minutes (the team's daily review minutes spread evenly
over the day — staggered shifts), a case that does not fit waits for the next step and unused minutes
carry over only while cases are waiting. A case's review completes at the step start plus the minutes
worked before it. A reviewed violation is caught and prevents ``loss_if_missed × 0.5 ** (wait /
half_life)``. Every policy gets the same arrivals, capacity, tiers and SLA due times.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from policy.cases import handle_minutes, ns_to_utc, require_columns, timestamps_ns, utc_now_ns
from policy.config import TIER_NAMES, CapacityConfig, QueuePolicyConfig, SimulationConfig
from policy.ranking import QueuePolicy, assign_tiers, tier_sla_hours

ARRIVAL_COLUMNS: tuple[str, ...] = (
    "case_id",
    "entity_type",
    "arrived_at",
    "probability",
    "exposure",
    "true_prob",
    "true_exposure",
    "is_violation",
    "loss_if_missed",
)

_NS_PER_HOUR = 3_600 * 10**9
_OPEN, _REVIEWED, _EXPIRED = 0, 1, 2


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Outcome of one simulated policy.

    ``per_day``: one row per simulated day (``date``, ``arrivals``, ``reviewed``, ``caught``,
    ``precision``, ``loss_arrived``, ``loss_prevented``, ``cumulative_loss_prevented``, ``expired``,
    ``sla_breaches``, ``reviewer_hours``, ``capacity_hours``, ``open_at_day_end``).
    ``cases``: one row per arrival in the window with its ``outcome`` (``reviewed``, ``expired``,
    ``open``), ``tier``, ``due_at``, ``reviewed_at``, ``wait_hours``, ``loss_prevented``, ``sla_met``.
    ``totals``: the headline figures (see ``simulate_queue``).
    """

    policy: str
    per_day: pd.DataFrame
    cases: pd.DataFrame
    totals: dict[str, float]

    def sla_attainment(self, tiers: tuple[str, ...] = ("P0", "P1")) -> float:
        """Share of decided cases in ``tiers`` that met their SLA (NaN when none is decided yet)."""
        decided = self.cases.loc[self.cases["tier"].isin(tiers), "sla_met"].dropna()
        return float(decided.astype(bool).mean()) if len(decided) else math.nan


def _half_lives(window: pd.DataFrame, simulation: SimulationConfig) -> np.ndarray:
    if "risk_type" not in window.columns:
        return np.full(len(window), simulation.default_half_life_hours)
    mapped = window["risk_type"].map(simulation.half_life_hours)
    return mapped.fillna(simulation.default_half_life_hours).to_numpy(dtype=float)


def _day_sum(day: np.ndarray, values: np.ndarray, days: int) -> np.ndarray:
    return np.bincount(day, weights=values, minlength=days)[:days]


def _day_index(hours: np.ndarray, days: int) -> np.ndarray:
    return np.clip(np.floor(hours / 24.0).astype(np.int64), 0, days - 1)


def simulate_queue(
    arrivals: pd.DataFrame,
    policy: QueuePolicy,
    capacity: CapacityConfig,
    config: QueuePolicyConfig,
    start: datetime | pd.Timestamp,
    days: int,
    progress: bool = False,
    *,
    simulation: SimulationConfig | None = None,
) -> SimulationResult:
    """Replay the arrivals in ``[start, start + days)`` through ``policy``.

    Totals: ``arrivals``, ``violations``, ``total_loss`` (sum of ``loss_if_missed`` arriving in the
    window), ``loss_prevented``, ``share_of_loss_prevented``, ``reviewed``, ``caught``, ``precision``
    (violations among reviewed), ``expired``, ``open_at_end``, ``sla_breaches`` (=
    ``sla_breaches_reviewed_late`` + ``sla_breaches_expired`` + ``sla_breaches_open_overdue``),
    ``sla_attainment_P0`` … ``_P3`` and ``sla_attainment_P0_P1``, ``reviewer_hours``,
    ``capacity_hours``, ``utilisation``.
    """
    sim = simulation if simulation is not None else SimulationConfig()
    if days <= 0:
        raise ValueError("days must be positive")
    require_columns(arrivals, ARRIVAL_COLUMNS, "arrivals")
    start_ns = utc_now_ns(start)
    start_ts = pd.Timestamp(start)
    horizon_h = days * 24.0

    arrived_ns = timestamps_ns(arrivals["arrived_at"])
    in_window = (arrived_ns >= start_ns) & (arrived_ns < start_ns + int(horizon_h * _NS_PER_HOUR))
    window = arrivals.loc[in_window].copy()
    window["_arrived_ns"] = arrived_ns[in_window]
    window = window.sort_values("_arrived_ns", kind="stable").reset_index(drop=True)
    if window["case_id"].duplicated().any():
        raise ValueError("arrivals must have unique case_id within the simulated window")

    arrived_h = (window["_arrived_ns"].to_numpy(dtype=np.int64) - start_ns) / _NS_PER_HOUR
    probability = window["probability"].to_numpy(dtype=float)
    tier_index = assign_tiers(probability, window["exposure"].to_numpy(dtype=float), config)
    due_h = arrived_h + tier_sla_hours(tier_index, config)
    handle = handle_minutes(window["entity_type"], config.handle_minutes)
    half_life = _half_lives(window, sim)
    loss = window["loss_if_missed"].to_numpy(dtype=float)
    violation = window["is_violation"].to_numpy(dtype=bool)

    # The policy sees only the columns it reads, with arrival time as its enqueue time.
    policy_frame = window.rename(columns={"arrived_at": "enqueued_at"})
    policy_frame = policy_frame[[c for c in policy.input_columns if c in policy_frame.columns]]

    n = len(window)
    status = np.full(n, _OPEN, dtype=np.int8)
    is_open = np.zeros(n, dtype=bool)
    reviewed_h = np.full(n, np.nan)
    expired_h = np.full(n, np.nan)

    step = sim.step_hours
    n_steps = math.ceil(horizon_h / step - 1e-9)
    minutes_per_hour = capacity.review_minutes_per_day / 24.0
    step_start_h = np.arange(n_steps) * step
    step_minutes_used = np.zeros(n_steps)
    step_open_after = np.zeros(n_steps, dtype=np.int64)
    joined = 0
    carry = 0.0

    steps: Iterable[int] = range(n_steps)
    if progress:

        steps = tqdm(steps, desc=f"simulate {policy.name}", unit="step")
    for k in steps:
        t0 = float(step_start_h[k])
        t1 = min(t0 + step, horizon_h)
        arrived_by = int(np.searchsorted(arrived_h, t0, side="right"))
        is_open[joined:arrived_by] = True
        joined = arrived_by

        open_idx = np.flatnonzero(is_open)
        too_old = t0 - arrived_h[open_idx] >= sim.max_age_hours
        if too_old.any():
            gone = open_idx[too_old]
            status[gone], is_open[gone] = _EXPIRED, False
            expired_h[gone] = arrived_h[gone] + sim.max_age_hours
            open_idx = open_idx[~too_old]

        budget = minutes_per_hour * (t1 - t0) + carry
        if open_idx.size == 0 or budget <= 0:
            carry = 0.0
            step_open_after[k] = open_idx.size
            continue
        now = start_ts + timedelta(hours=t0)
        ranked = policy.rank(policy_frame.take(open_idx), now)
        ordered = open_idx[ranked.order]
        worked = np.cumsum(handle[ordered])
        n_done = int(np.searchsorted(worked, budget + 1e-9, side="right"))
        done = ordered[:n_done]
        # Reviews complete in ranked order as the team's minutes are spent through the step.
        reviewed_h[done] = np.minimum(t0 + worked[:n_done] / minutes_per_hour, t1)
        status[done], is_open[done] = _REVIEWED, False
        used = float(worked[n_done - 1]) if n_done else 0.0
        step_minutes_used[k] = used
        # Left-over minutes carry over only while work is waiting (so a long case can be started).
        carry = budget - used if n_done < ordered.size else 0.0
        step_open_after[k] = ordered.size - n_done

    reviewed = status == _REVIEWED
    expired = status == _EXPIRED
    still_open = status == _OPEN
    wait_h = np.where(reviewed, reviewed_h - arrived_h, np.nan)
    prevented = np.where(reviewed, loss * np.power(0.5, np.nan_to_num(wait_h) / half_life), 0.0)
    reviewed_late = reviewed & (reviewed_h > due_h + 1e-9)
    open_overdue = still_open & (due_h < horizon_h)
    sla_met = pd.array(np.where(reviewed, ~reviewed_late, False), dtype="boolean")
    undecided = still_open & ~open_overdue
    sla_met[undecided] = pd.NA

    per_day = _per_day_frame(
        start_ts,
        days,
        arrived_h,
        reviewed_h,
        expired_h,
        reviewed,
        expired,
        reviewed_late,
        violation,
        loss,
        prevented,
        step_start_h,
        step_minutes_used,
        step_open_after,
        capacity,
        horizon_h,
    )
    cases = pd.DataFrame(
        {
            "case_id": window["case_id"].to_numpy(),
            "entity_type": window["entity_type"].to_numpy(),
            "tier": np.asarray(TIER_NAMES, dtype=object)[tier_index],
            "arrived_at": ns_to_utc(window["_arrived_ns"].to_numpy(dtype=np.int64)),
            "due_at": ns_to_utc(start_ns + np.round(due_h * _NS_PER_HOUR).astype(np.int64)),
            "outcome": np.select([reviewed, expired], ["reviewed", "expired"], "open"),
            "reviewed_at": ns_to_utc(
                np.where(reviewed, start_ns + np.round(np.nan_to_num(reviewed_h) * _NS_PER_HOUR), 0).astype(np.int64)
            ).where(reviewed),
            "wait_hours": wait_h,
            "is_violation": violation,
            "loss_if_missed": loss,
            "loss_prevented": prevented,
            "sla_met": sla_met,
        }
    )
    totals = _totals(
        cases, reviewed, expired, still_open, reviewed_late, open_overdue, violation, loss, prevented, per_day
    )
    return SimulationResult(policy=policy.name, per_day=per_day, cases=cases, totals=totals)


def _per_day_frame(
    start_ts: pd.Timestamp,
    days: int,
    arrived_h: np.ndarray,
    reviewed_h: np.ndarray,
    expired_h: np.ndarray,
    reviewed: np.ndarray,
    expired: np.ndarray,
    reviewed_late: np.ndarray,
    violation: np.ndarray,
    loss: np.ndarray,
    prevented: np.ndarray,
    step_start_h: np.ndarray,
    step_minutes_used: np.ndarray,
    step_open_after: np.ndarray,
    capacity: CapacityConfig,
    horizon_h: float,
) -> pd.DataFrame:
    arrival_day = _day_index(arrived_h, days)
    review_day = _day_index(np.nan_to_num(reviewed_h), days)
    expiry_day = _day_index(np.nan_to_num(expired_h), days)
    n_reviewed = _day_sum(review_day, reviewed.astype(float), days)
    caught = _day_sum(review_day, (reviewed & violation).astype(float), days)
    step_day = _day_index(step_start_h, days)
    hours_in_day = np.clip(horizon_h - np.arange(days) * 24.0, 0.0, 24.0)
    open_at_day_end = np.zeros(days, dtype=np.int64)
    # The last step of each day holds the open count at the end of that day.
    last_step = np.searchsorted(step_day, np.arange(days), side="right") - 1
    has_step = last_step >= 0
    open_at_day_end[has_step] = step_open_after[last_step[has_step]]
    prevented_by_day = _day_sum(review_day, np.where(reviewed, prevented, 0.0), days)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_reviewed > 0, caught / n_reviewed, np.nan)
    return pd.DataFrame(
        {
            "date": pd.date_range(start_ts, periods=days, freq="D"),
            "arrivals": np.bincount(arrival_day, minlength=days)[:days],
            "reviewed": n_reviewed.astype(np.int64),
            "caught": caught.astype(np.int64),
            "precision": precision,
            "loss_arrived": _day_sum(arrival_day, loss, days),
            "loss_prevented": prevented_by_day,
            "cumulative_loss_prevented": np.cumsum(prevented_by_day),
            "expired": _day_sum(expiry_day, expired.astype(float), days).astype(np.int64),
            "sla_breaches": (
                _day_sum(review_day, reviewed_late.astype(float), days)
                + _day_sum(expiry_day, expired.astype(float), days)
            ).astype(np.int64),
            "reviewer_hours": _day_sum(step_day, step_minutes_used, days) / 60.0,
            "capacity_hours": capacity.review_hours_per_day * hours_in_day / 24.0,
            "open_at_day_end": open_at_day_end,
        }
    )


def _totals(
    cases: pd.DataFrame,
    reviewed: np.ndarray,
    expired: np.ndarray,
    still_open: np.ndarray,
    reviewed_late: np.ndarray,
    open_overdue: np.ndarray,
    violation: np.ndarray,
    loss: np.ndarray,
    prevented: np.ndarray,
    per_day: pd.DataFrame,
) -> dict[str, float]:
    total_loss = float(loss.sum())
    n_reviewed = int(reviewed.sum())
    caught = int((reviewed & violation).sum())
    reviewer_hours = float(per_day["reviewer_hours"].sum())
    capacity_hours = float(per_day["capacity_hours"].sum())
    totals: dict[str, float] = {
        "arrivals": float(len(cases)),
        "violations": float(violation.sum()),
        "total_loss": total_loss,
        "loss_prevented": float(prevented.sum()),
        "share_of_loss_prevented": float(prevented.sum()) / total_loss if total_loss > 0 else math.nan,
        "reviewed": float(n_reviewed),
        "caught": float(caught),
        "precision": caught / n_reviewed if n_reviewed else math.nan,
        "expired": float(expired.sum()),
        "open_at_end": float(still_open.sum()),
        "sla_breaches_reviewed_late": float(reviewed_late.sum()),
        "sla_breaches_expired": float(expired.sum()),
        "sla_breaches_open_overdue": float(open_overdue.sum()),
        "sla_breaches": float(reviewed_late.sum() + expired.sum() + open_overdue.sum()),
        "reviewer_hours": reviewer_hours,
        "capacity_hours": capacity_hours,
        "utilisation": reviewer_hours / capacity_hours if capacity_hours > 0 else math.nan,
    }
    result = SimulationResult(policy="", per_day=per_day, cases=cases, totals={})
    for tier in TIER_NAMES:
        totals[f"sla_attainment_{tier}"] = result.sla_attainment((tier,))
    totals["sla_attainment_P0_P1"] = result.sla_attainment(("P0", "P1"))
    return totals


def run_policies(
    arrivals: pd.DataFrame,
    policies: Mapping[str, QueuePolicy],
    capacity: CapacityConfig,
    config: QueuePolicyConfig,
    start: datetime | pd.Timestamp,
    days: int,
    progress: bool = False,
    *,
    simulation: SimulationConfig | None = None,
) -> dict[str, SimulationResult]:
    """Simulate every policy on the same arrivals, capacity, tiers and loss model."""
    return {
        label: simulate_queue(arrivals, policy, capacity, config, start, days, progress=progress, simulation=simulation)
        for label, policy in policies.items()
    }


def summarise(results: Mapping[str, SimulationResult]) -> pd.DataFrame:
    """One row per policy (index = the label it was run under), totals side by side.

    When a policy named ``oracle`` / ``fifo`` is among them, adds ``share_of_oracle_prevented`` and
    ``multiple_of_fifo_prevented`` (loss prevented relative to that policy at the same capacity).
    """
    frame = pd.DataFrame({label: result.totals for label, result in results.items()}).T
    frame.index.name = "policy"
    frame.insert(0, "policy_name", [result.policy for result in results.values()])
    by_name = {result.policy: result.totals["loss_prevented"] for result in results.values()}
    for reference, column in (("oracle", "share_of_oracle_prevented"), ("fifo", "multiple_of_fifo_prevented")):
        base = by_name.get(reference)
        if base is not None:
            frame[column] = frame["loss_prevented"] / base if base > 0 else math.nan
    return frame


def compare_policies(
    arrivals: pd.DataFrame,
    policies: Mapping[str, QueuePolicy],
    capacity: CapacityConfig,
    config: QueuePolicyConfig,
    start: datetime | pd.Timestamp,
    days: int,
    progress: bool = False,
    *,
    simulation: SimulationConfig | None = None,
) -> pd.DataFrame:
    """Side-by-side totals for each policy (see ``summarise``). Use ``run_policies`` for per-day data."""
    results = run_policies(arrivals, policies, capacity, config, start, days, progress=progress, simulation=simulation)
    return summarise(results)


def per_day_frame(results: Mapping[str, SimulationResult]) -> pd.DataFrame:
    """The per-day frames of several runs stacked, with a ``policy`` column (the run label)."""
    return pd.concat([result.per_day.assign(policy=label) for label, result in results.items()], ignore_index=True)


def plot_comparison(
    result_frame: pd.DataFrame,
    per_day: pd.DataFrame | Mapping[str, SimulationResult],
    path: str | Path,
) -> Path:
    """Write a PNG: cumulative loss prevented per day by policy, and total loss prevented as bars.

    ``result_frame`` is the output of ``compare_policies``/``summarise``; ``per_day`` is the stacked
    frame from ``per_day_frame`` (or the results mapping itself).
    """
    # matplotlib (~0.5 s, and a backend choice) loads only when a plot is drawn: the service imports `policy`
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")  # headless; set here so importing this module has no side effects
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter  # noqa: PLC0415

    daily = per_day if isinstance(per_day, pd.DataFrame) else per_day_frame(per_day)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (lines, bars) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [2, 1]})
    try:
        for label, frame in daily.groupby("policy", sort=False):
            lines.plot(frame["date"], frame["cumulative_loss_prevented"], label=str(label), marker=".")
        lines.set_title("Cumulative loss prevented")
        lines.set_xlabel("day")
        lines.set_ylabel("loss prevented")
        lines.legend()
        lines.grid(alpha=0.3)
        locator = AutoDateLocator()
        lines.xaxis.set_major_locator(locator)
        lines.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        totals = result_frame["loss_prevented"].astype(float)
        bars.bar([str(i) for i in totals.index], totals.to_numpy())
        if "total_loss" in result_frame.columns:
            bars.axhline(
                float(result_frame["total_loss"].iloc[0]), color="grey", linestyle="--", label="total loss arrived"
            )
            bars.legend()
        bars.set_title("Total loss prevented")
        bars.tick_params(axis="x", labelrotation=30)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path
