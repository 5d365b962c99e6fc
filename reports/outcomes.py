"""Reviewer outcomes and queue timeliness: precision by tier and week, SLA attainment, open-case age.

Input is a *review frame*, one row per case that entered the review queue:

| column | type | meaning |
|---|---|---|
| ``case_id`` | str | unique |
| ``tier`` | str | ``P0``..``P3`` at enqueue (its SLA comes from ``QueuePolicyConfig``) |
| ``scored_at`` | tz-aware timestamp | when the case was scored and enqueued (the SLA clock starts) |
| ``decided_at`` | tz-aware timestamp or NaT | the reviewer's decision time; NaT while open |
| ``outcome`` | str or None | ``violation``, ``no_violation``, ``escalate``; None while open |
| ``loss_amount`` | float, optional | loss recorded by the reviewer |
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from policy.config import TIER_NAMES, QueuePolicyConfig
from reports.config import OutcomeThresholds

REVIEW_COLUMNS: tuple[str, ...] = ("case_id", "tier", "scored_at", "decided_at", "outcome")
VIOLATION = "violation"
NO_VIOLATION = "no_violation"
ALL_TIERS = "all"


@dataclass(frozen=True)
class Alert:
    level: str  # "warn" or "alert"
    kind: str  # "feature_drift", "score_drift", "precision", "sla"
    subject: str  # feature name, tier, ...
    value: float
    threshold: float
    message: str


def validate_review_frame(cases: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REVIEW_COLUMNS if c not in cases.columns]
    if missing:
        raise ValueError(f"review frame is missing columns {missing}")
    out = cases.copy()
    for column in ("scored_at", "decided_at"):
        out[column] = pd.to_datetime(out[column], utc=True)
    out["tier"] = out["tier"].astype(str)
    return out


def _final(cases: pd.DataFrame) -> pd.DataFrame:
    # Escalations are decided but not yet a verdict: they count in SLA attainment, not in precision.
    return cases[cases["outcome"].isin((VIOLATION, NO_VIOLATION))]


def _precision_rows(group: pd.DataFrame) -> pd.Series:
    decided = len(group)
    violations = int((group["outcome"] == VIOLATION).sum())
    return pd.Series({"decided": decided, "violations": violations,
                      "precision": violations / decided if decided else math.nan})


def precision_by_tier(cases: pd.DataFrame) -> pd.DataFrame:
    """Share of violations among cases with a final decision, per tier and over all tiers."""
    final = _final(cases)
    rows: dict[str, pd.Series] = {
        tier: _precision_rows(final[final["tier"] == tier]) for tier in TIER_NAMES if (cases["tier"] == tier).any()
    }
    rows[ALL_TIERS] = _precision_rows(final)
    table = pd.DataFrame(rows).T
    table.index.name = "tier"
    return table.astype({"decided": int, "violations": int, "precision": float})


def week_start(times: pd.Series) -> pd.Series:
    """Monday 00:00 UTC of each timestamp's week (weeks as the ops calendar counts them)."""
    days = times.dt.floor("D")
    return days - pd.to_timedelta(days.dt.day_of_week, unit="D")


def precision_by_week(cases: pd.DataFrame) -> pd.DataFrame:
    """Long table (week, tier, decided, violations, precision), by the week of the decision."""
    final = _final(cases).assign(week=lambda f: week_start(f["decided_at"]))
    parts = [{"week": week, "tier": tier, **_precision_rows(group).to_dict()}
             for (week, tier), group in final.groupby(["week", "tier"])]
    parts += [{"week": week, "tier": ALL_TIERS, **_precision_rows(group).to_dict()}
              for week, group in final.groupby("week")]
    table = pd.DataFrame(parts, columns=["week", "tier", "decided", "violations", "precision"])
    return table.sort_values(["week", "tier"]).reset_index(drop=True).astype(
        {"decided": int, "violations": int, "precision": float}
    )


def sla_table(cases: pd.DataFrame, policy: QueuePolicyConfig, as_of: datetime) -> pd.DataFrame:
    """Per tier: decided within SLA, open and overdue, attainment, decision time and open-case age in hours.

    Attainment = decided in time ÷ (decided + open past due): an overdue open case is already a breach,
    counting only decided cases would make a stalled queue look on time.
    """
    now = pd.Timestamp(as_of).tz_convert("UTC")
    rows = {}
    for tier in TIER_NAMES:
        group = cases[cases["tier"] == tier]
        if group.empty:
            continue
        sla = policy.sla_hours(tier)
        decided = group["decided_at"].notna()
        hours = (group.loc[decided, "decided_at"] - group.loc[decided, "scored_at"]).dt.total_seconds() / 3600
        age = (now - group.loc[~decided, "scored_at"]).dt.total_seconds() / 3600
        met = int((hours <= sla).sum())
        overdue = int((age > sla).sum())
        judged = int(decided.sum()) + overdue
        rows[tier] = {
            "sla_hours": sla,
            "cases": len(group),
            "decided": int(decided.sum()),
            "decided_in_sla": met,
            "open": int((~decided).sum()),
            "open_overdue": overdue,
            "attainment": met / judged if judged else math.nan,
            "decision_hours_median": float(hours.median()) if len(hours) else math.nan,
            "decision_hours_p90": float(hours.quantile(0.9)) if len(hours) else math.nan,
            "open_age_hours_median": float(age.median()) if len(age) else math.nan,
            "open_age_hours_p90": float(age.quantile(0.9)) if len(age) else math.nan,
            "open_age_hours_max": float(age.max()) if len(age) else math.nan,
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "tier"
    return table


def outcome_alerts(
    by_week: pd.DataFrame, sla: pd.DataFrame, thresholds: OutcomeThresholds
) -> list[Alert]:
    alerts: list[Alert] = []
    for tier in (*thresholds.review_tiers, ALL_TIERS):
        weeks = by_week[(by_week["tier"] == tier) & (by_week["decided"] >= thresholds.min_cases)]
        if len(weeks) < 2:
            continue
        latest, earlier = weeks.iloc[-1], weeks.iloc[:-1]
        baseline = float(earlier["violations"].sum() / earlier["decided"].sum())
        drop = baseline - float(latest["precision"])
        level = ("alert" if drop >= thresholds.precision_drop_alert
                 else "warn" if drop >= thresholds.precision_drop_warn else None)
        if level:
            week = pd.Timestamp(latest["week"]).date().isoformat()
            alerts.append(Alert(
                level, "precision", tier, float(latest["precision"]), baseline - thresholds.precision_drop_warn,
                f"Precision of reviewed {tier} cases fell to {latest['precision']:.0%} in the week of {week} "
                f"({int(latest['decided'])} decided) from {baseline:.0%} in the earlier weeks",
            ))
    for tier_key, row in sla.iterrows():
        tier = str(tier_key)
        if tier not in thresholds.review_tiers:
            continue
        judged = row["decided"] + row["open_overdue"]
        if judged < thresholds.min_cases or not np.isfinite(row["attainment"]):
            continue
        attainment = float(row["attainment"])
        level = ("alert" if attainment < thresholds.sla_alert
                 else "warn" if attainment < thresholds.sla_warn else None)
        if level:
            limit = thresholds.sla_alert if level == "alert" else thresholds.sla_warn
            alerts.append(Alert(
                level, "sla", tier, attainment, limit,
                f"SLA attainment for {tier} is {attainment:.0%} (target {thresholds.sla_warn:.0%}, "
                f"SLA {row['sla_hours']:g} h): {int(row['decided_in_sla'])} of {int(judged)} on time, "
                f"{int(row['open_overdue'])} open past due",
            ))
    return alerts
