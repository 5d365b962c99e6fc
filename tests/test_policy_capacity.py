"""Capacity planner arithmetic, the daily cut-off, backlog projection and staffing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from policy.capacity import CapacityPlanner, recommend_staff
from policy.config import CapacityConfig, QueuePolicyConfig, SimulationConfig
from policy.priority import ExpectedLossPolicy

NOW = pd.Timestamp("2024-05-01", tz="UTC")


def test_reviews_per_day_for_a_case_mix() -> None:
    planner = CapacityPlanner(CapacityConfig(investigators=10, shift_hours=8, productive_share=0.75))
    assert planner.review_minutes_per_day == pytest.approx(3_600)
    # Mean handle = 0.8 × 6 + 0.2 × 20 = 8.8 minutes → 409.09 reviews a day.
    assert planner.mean_handle_minutes({"listing": 80, "account": 20}) == pytest.approx(8.8)
    reviews = planner.reviews_per_day({"listing": 0.8, "account": 0.2})
    assert reviews["total"] == pytest.approx(3_600 / 8.8)
    assert reviews["listing"] == pytest.approx(0.8 * 3_600 / 8.8)
    assert reviews["account"] == pytest.approx(0.2 * 3_600 / 8.8)
    assert reviews["group"] == 0
    with pytest.raises(ValueError):
        planner.reviews_per_day({"shop": 1})


def test_daily_cutoff_walks_the_ranked_queue() -> None:
    cases = pd.DataFrame(
        {
            "case_id": list("abcdef"),
            "entity_type": ["listing", "account", "group", "listing", "account", "listing"],
            "enqueued_at": [NOW] * 6,
            "probability": [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],
            "exposure": [100.0] * 6,  # expected loss 60, 50, … 10: all P3
        }
    )
    ranked = ExpectedLossPolicy().rank(cases, NOW)
    # 90 minutes a day: 6 + 20 + 60 = 86 fit, the next listing (92) does not.
    planner = CapacityPlanner(CapacityConfig(investigators=1, shift_hours=1.5, productive_share=1.0))
    cutoff = planner.daily_cutoff(ranked)
    assert cutoff.reviewed == 3
    assert cutoff.reviewed_by_type == {"listing": 1, "account": 1, "group": 1}
    assert cutoff.review_minutes_used == pytest.approx(86)
    assert cutoff.cutoff_expected_loss == pytest.approx(40)
    assert cutoff.cutoff_priority == pytest.approx(40)
    assert cutoff.expected_loss_reviewed == pytest.approx(150)
    assert cutoff.expected_loss_waiting == pytest.approx(60)
    assert cutoff.backlog == 3
    assert cutoff.backlog_by_tier == {"P0": 0, "P1": 0, "P2": 0, "P3": 3}
    nobody = CapacityPlanner(CapacityConfig(investigators=0)).daily_cutoff(ranked)
    assert nobody.reviewed == 0 and math.isnan(nobody.cutoff_priority)


def test_project_backlog_grows_by_the_daily_shortfall() -> None:
    planner = CapacityPlanner(CapacityConfig(investigators=1, shift_hours=8, productive_share=0.75))
    # 100 listings a day = 600 minutes of work against 360 minutes: 40 cases more every day.
    frame = planner.project_backlog({"listing": 100}, days=3)
    np.testing.assert_allclose(frame["backlog"], [40, 80, 120])
    np.testing.assert_allclose(frame["reviews"], [60, 60, 60])
    np.testing.assert_allclose(frame["utilisation"], [1, 1, 1])
    light = planner.project_backlog({"listing": 30}, days=2, initial_backlog={"listing": 50})
    # Day 0: 50 + 30 = 80 cases = 480 min of work, 360 done → 20 left; day 1: 50 → all done.
    np.testing.assert_allclose(light["backlog"], [20, 0])
    np.testing.assert_allclose(light["utilisation"], [1, 300 / 360])


def test_staff_for_workload() -> None:
    planner = CapacityPlanner(CapacityConfig(investigators=1, shift_hours=8, productive_share=0.75))
    # 600 listings = 3,600 minutes; 360 per investigator at ≤ 85 % → ceil(11.76) = 12.
    assert planner.staff_for_workload({"listing": 600}) == 12
    assert planner.staff_for_workload({"listing": 600}, max_utilisation=1.0) == 10


def test_recommend_staff_finds_the_smallest_team_meeting_the_target() -> None:
    rng = np.random.default_rng(0)
    n = 1_500
    start = pd.Timestamp("2024-03-01", tz="UTC")
    true_prob = rng.beta(0.5, 8, n)
    exposure = rng.lognormal(7, 1.2, n)
    violation = rng.random(n) < true_prob
    arrivals = pd.DataFrame(
        {
            "case_id": [f"C{i}" for i in range(n)],
            "entity_type": rng.choice(["listing", "account"], n, p=[0.85, 0.15]),
            "arrived_at": start + pd.to_timedelta(rng.uniform(0, 72, n), unit="h"),
            "probability": true_prob,
            "exposure": exposure,
            "true_prob": true_prob,
            "true_exposure": exposure,
            "is_violation": violation,
            "loss_if_missed": violation * exposure,
        }
    )
    config = QueuePolicyConfig()
    recommendation = recommend_staff(
        arrivals,
        ExpectedLossPolicy(config),
        CapacityConfig(),
        config,
        start,
        3,
        target=0.9,
        simulation=SimulationConfig(step_hours=1.0),
        max_investigators=64,
    )
    assert recommendation.investigators is not None
    assert recommendation.attainment >= 0.9
    tried = recommendation.tried.set_index("investigators")["attainment"]
    assert tried[recommendation.investigators] >= 0.9
    smaller = recommendation.investigators - 1
    if smaller in tried.index:
        assert tried[smaller] < 0.9
    assert recommendation.workload_lower_bound >= 1
