"""Ranking: expected-loss order, SLA urgency, re-scoring, tiers, due times, reasons and baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from policy.cases import upsert_cases
from policy.config import QueuePolicyConfig
from policy.priority import (
    ExpectedLossPolicy,
    FifoPolicy,
    OraclePolicy,
    ProbabilityPolicy,
    RulesBaselinePolicy,
)
from policy.ranking import assign_tiers, urgency_boost

NOW = pd.Timestamp("2024-05-01 12:00", tz="UTC")


def cases_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["enqueued_at"] = pd.to_datetime(frame["enqueued_at"], utc=True)
    if "entity_type" not in frame:
        frame["entity_type"] = "listing"
    return frame


def hours_ago(hours: float) -> pd.Timestamp:
    return NOW - pd.Timedelta(hours=hours)


def test_expected_loss_order_is_probability_times_exposure() -> None:
    cases = cases_frame(
        [
            {"case_id": "a", "enqueued_at": hours_ago(1), "probability": 0.9, "exposure": 100},  # 90
            {"case_id": "b", "enqueued_at": hours_ago(1), "probability": 0.1, "exposure": 2_000},  # 200
            {"case_id": "c", "enqueued_at": hours_ago(1), "probability": 0.5, "exposure": 300},  # 150
        ]
    )
    ranked = ExpectedLossPolicy().rank(cases, NOW)
    assert list(ranked.case_id) == ["b", "c", "a"]
    np.testing.assert_allclose(ranked.expected_loss, [200, 150, 90])
    np.testing.assert_array_equal(ranked.order, [1, 2, 0])
    # Fresh cases get no boost, so priority is the expected loss itself.
    np.testing.assert_allclose(ranked.priority, [200, 150, 90])


def test_probability_policy_ignores_exposure() -> None:
    cases = cases_frame(
        [
            {"case_id": "a", "enqueued_at": hours_ago(1), "probability": 0.9, "exposure": 100},
            {"case_id": "b", "enqueued_at": hours_ago(1), "probability": 0.1, "exposure": 2_000},
        ]
    )
    assert list(ProbabilityPolicy().rank(cases, NOW).case_id) == ["a", "b"]


def test_urgency_boost_shape() -> None:
    config = QueuePolicyConfig().urgency  # start 0.5, max 3, power 2
    boost = urgency_boost(np.array([0.0, 12.0, 18.0, 24.0, 100.0]), np.full(5, 24.0), config)
    # u = 0, 0.5, 0.75, 1, >1 → ramp 0, 0, 0.5, 1, 1 → 1 + 2 * ramp**2
    np.testing.assert_allclose(boost, [1.0, 1.0, 1.5, 3.0, 3.0])


def test_sla_boost_lifts_old_case_above_slightly_more_valuable_fresh_case() -> None:
    # Both P1 (expected loss ≥ 1,000, SLA 24 h). The old one is 21.6 h in: u = 0.9 → boost 2.28.
    cases = cases_frame(
        [
            {"case_id": "fresh", "enqueued_at": hours_ago(0.5), "probability": 0.55, "exposure": 2_000},
            {"case_id": "old", "enqueued_at": hours_ago(21.6), "probability": 0.5, "exposure": 2_000},
        ]
    )
    ranked = ExpectedLossPolicy().rank(cases, NOW)
    assert list(ranked.case_id) == ["old", "fresh"]
    assert ranked.urgency_boost[0] == pytest.approx(2.28)
    # Without the boost the fresh case would win.
    assert list(ExpectedLossPolicy(urgency=False).rank(cases, NOW).case_id) == ["fresh", "old"]


def test_tiers_and_due_times_follow_thresholds_and_enqueue_time() -> None:
    config = QueuePolicyConfig()  # P0 ≥ 5,000 (4 h), P1 ≥ 1,000 (24 h), P2 ≥ 100 (72 h), else P3 (168 h)
    enqueued = hours_ago(1)
    cases = cases_frame(
        [
            {"case_id": "p0", "enqueued_at": enqueued, "probability": 0.5, "exposure": 10_000},
            {"case_id": "p1", "enqueued_at": enqueued, "probability": 0.5, "exposure": 2_000},
            {"case_id": "p2", "enqueued_at": enqueued, "probability": 0.5, "exposure": 200},
            {"case_id": "p3", "enqueued_at": enqueued, "probability": 0.5, "exposure": 100},
        ]
    )
    frame = ExpectedLossPolicy(config).rank(cases, NOW).to_frame().set_index("case_id")
    assert frame["tier"].to_dict() == {"p0": "P0", "p1": "P1", "p2": "P2", "p3": "P3"}
    for case_id, sla in {"p0": 4, "p1": 24, "p2": 72, "p3": 168}.items():
        assert frame.loc[case_id, "sla_due_at"] == enqueued + pd.Timedelta(hours=sla)
        assert frame.loc[case_id, "hours_to_due"] == pytest.approx(sla - 1)
    np.testing.assert_array_equal(assign_tiers(np.array([0.5, 0.5]), np.array([10_000, 199.99]), config), [0, 3])


def test_min_probability_keeps_long_shots_out_of_a_tier() -> None:
    config = QueuePolicyConfig.model_validate(
        {
            "tiers": {
                "P0": {"sla_hours": 4, "min_expected_loss": 5_000, "min_probability": 0.3},
                "P1": {"sla_hours": 24, "min_expected_loss": 1_000},
                "P2": {"sla_hours": 72, "min_expected_loss": 100},
                "P3": {"sla_hours": 168},
            }
        }
    )
    # Expected loss 10,000 either way; the p = 0.01 case falls through to P1.
    np.testing.assert_array_equal(assign_tiers(np.array([0.5, 0.01]), np.array([20_000, 1_000_000]), config), [0, 1])


def test_rescored_case_is_reranked_but_keeps_its_enqueue_time() -> None:
    queue = cases_frame(
        [
            {"case_id": "a", "enqueued_at": hours_ago(5), "probability": 0.05, "exposure": 1_000},
            {"case_id": "b", "enqueued_at": hours_ago(3), "probability": 0.2, "exposure": 1_000},
        ]
    )
    policy = ExpectedLossPolicy()
    assert list(policy.rank(queue, NOW).case_id) == ["b", "a"]
    rescored = cases_frame(
        [
            {"case_id": "a", "enqueued_at": NOW, "probability": 0.9, "exposure": 1_000},
            {"case_id": "c", "enqueued_at": NOW, "probability": 0.1, "exposure": 1_000},
        ]
    )
    merged = upsert_cases(queue, rescored)
    ranked = policy.rank(merged, NOW).to_frame().set_index("case_id")
    assert list(ranked.index) == ["a", "b", "c"]
    assert ranked.loc["a", "enqueued_at"] == hours_ago(5)
    assert ranked.loc["c", "enqueued_at"] == NOW
    assert ranked.loc["a", "expected_loss"] == pytest.approx(900)


def test_reason_explains_expected_loss_and_sla() -> None:
    cases = cases_frame([{"case_id": "a", "enqueued_at": hours_ago(21), "probability": 0.62, "exposure": 2_000}])
    reason = ExpectedLossPolicy().rank(cases, NOW).reasons()[0]
    assert reason.startswith("expected loss 1,240 (p=0.62 × exposure 2,000); SLA P1 due in 3 h")
    assert "urgency ×" in reason
    assert "overdue by 3 h" in ExpectedLossPolicy().rank(cases, NOW + pd.Timedelta(hours=6)).reasons()[0]


def test_group_reason_mentions_members() -> None:
    cases = cases_frame(
        [
            {
                "case_id": "g1",
                "entity_type": "group",
                "enqueued_at": hours_ago(1),
                "probability": 0.4,
                "exposure": 50_000,
                "members": ["A1", "A2", "A3"],
            }
        ]
    )
    frame = ExpectedLossPolicy().rank(cases, NOW).to_frame()
    assert "(group of 3)" in str(frame["reason"].iloc[0])


def test_fifo_orders_by_enqueue_time() -> None:
    cases = cases_frame(
        [
            {"case_id": "new", "enqueued_at": hours_ago(1), "probability": 0.9, "exposure": 9_000},
            {"case_id": "old", "enqueued_at": hours_ago(30), "probability": 0.01, "exposure": 10},
            {"case_id": "mid", "enqueued_at": hours_ago(10), "probability": 0.5, "exposure": 100},
        ]
    )
    ranked = FifoPolicy().rank(cases, NOW)
    assert list(ranked.case_id) == ["old", "mid", "new"]
    assert ranked.reasons()[0].startswith("waiting 30 h")


def test_oracle_uses_truth_and_equals_expected_loss_when_scores_are_true() -> None:
    rng = np.random.default_rng(3)
    n = 500
    true_prob = rng.beta(0.5, 10, n)
    true_exposure = rng.lognormal(6, 1.5, n)
    cases = pd.DataFrame(
        {
            "case_id": [f"c{i}" for i in range(n)],
            "entity_type": rng.choice(["listing", "account", "group"], n),
            "enqueued_at": NOW - pd.to_timedelta(rng.uniform(0, 200, n), unit="h"),
            "probability": true_prob,
            "exposure": true_exposure,
            "true_prob": true_prob,
            "true_exposure": true_exposure,
        }
    )
    oracle = OraclePolicy().rank(cases, NOW)
    expected_loss = ExpectedLossPolicy().rank(cases, NOW)
    np.testing.assert_array_equal(oracle.order, expected_loss.order)
    # With noisy model scores the oracle ranks by the truth, not by the scores.
    noisy = cases.assign(probability=rng.uniform(0, 1, n))
    assert not np.array_equal(OraclePolicy().rank(noisy, NOW).order, ExpectedLossPolicy().rank(noisy, NOW).order)
    # Tiers (so the SLA boost) come from the model scores; without the boost only the truth matters.
    np.testing.assert_array_equal(
        OraclePolicy(urgency=False).rank(noisy, NOW).order, OraclePolicy(urgency=False).rank(cases, NOW).order
    )


def test_rules_baseline_scores_raw_signals() -> None:
    base = {"enqueued_at": hours_ago(1), "probability": 0.1, "exposure": 100}
    cases = cases_frame(
        [
            {
                **base,
                "case_id": "clean",
                "price": 100,
                "reference_price": 110,
                "discount_pct": 0.1,
                "title": "leather bag",
                "verification": "id",
                "account_age_days": 400,
                "stock": 5,
            },
            {
                **base,
                "case_id": "cheap_replica",
                "price": 20,
                "reference_price": 200,
                "discount_pct": 0.8,
                "title": "AAA quality replica bag",
                "verification": "id",
                "account_age_days": 400,
                "stock": 5,
            },
            {
                **base,
                "case_id": "new_seller",
                "price": 100,
                "reference_price": 110,
                "discount_pct": 0.1,
                "title": "bag",
                "verification": "none",
                "account_age_days": 3,
                "stock": 5,
            },
            {
                **base,
                "case_id": "clean_big",
                "price": 1_000,
                "reference_price": 1_100,
                "discount_pct": 0.0,
                "title": "watch",
                "verification": "id",
                "account_age_days": 400,
                "stock": 50,
            },
        ]
    )
    policy = RulesBaselinePolicy()
    ranked = policy.rank(cases, NOW)
    # cheap_replica: price 3 + discount 1 + keywords 2 = 6; new_seller: 2; clean ones 0, bigger value first.
    assert list(ranked.case_id) == ["cheap_replica", "new_seller", "clean_big", "clean"]
    reasons = ranked.reasons()
    assert reasons[0].startswith("rules score 6 (price far below reference, deep discount, suspicious keywords)")
    assert "no rule fired" in reasons[3]


def test_rules_baseline_account_rules_and_missing_columns() -> None:
    base = {"enqueued_at": hours_ago(1), "probability": 0.1, "exposure": 100, "entity_type": "account"}
    cases = cases_frame(
        [
            {
                **base,
                "case_id": "ok",
                "orders_90d": 500,
                "chargebacks_90d": 1,
                "disputes_90d": 2,
                "prior_violations": 0,
                "gmv_90d": 50_000,
            },
            {
                **base,
                "case_id": "chargebacks",
                "orders_90d": 100,
                "chargebacks_90d": 5,
                "disputes_90d": 2,
                "prior_violations": 1,
                "gmv_90d": 1_000,
            },
        ]
    )
    hits = RulesBaselinePolicy().rule_hits(cases)
    assert hits["chargebacks"].tolist() == [False, True]
    assert hits["prior violations"].tolist() == [False, True]
    assert "price far below reference" not in hits  # its columns are absent
    assert list(RulesBaselinePolicy().rank(cases, NOW).case_id) == ["chargebacks", "ok"]


def test_input_contract_is_enforced() -> None:
    cases = cases_frame(
        [
            {"case_id": "a", "enqueued_at": hours_ago(1), "probability": 0.5, "exposure": 10},
            {"case_id": "a", "enqueued_at": hours_ago(2), "probability": 0.5, "exposure": 10},
        ]
    )
    with pytest.raises(ValueError, match="unique"):
        ExpectedLossPolicy().rank(cases, NOW)
    single = cases.iloc[:1]
    with pytest.raises(ValueError, match="timezone"):
        ExpectedLossPolicy().rank(single, pd.Timestamp("2024-05-01 12:00"))
    with pytest.raises(ValueError, match="true_prob"):
        OraclePolicy().rank(single, NOW)
    with pytest.raises(ValueError, match="entity_type"):
        ExpectedLossPolicy().rank(single.assign(entity_type="shop"), NOW)
    with pytest.raises(ValueError, match="missing"):
        ExpectedLossPolicy().rank(single.drop(columns="exposure"), NOW)


def test_empty_queue_ranks_to_empty() -> None:
    empty = cases_frame([{"case_id": "a", "enqueued_at": hours_ago(1), "probability": 0.5, "exposure": 10}]).iloc[:0]
    for policy in (ExpectedLossPolicy(), FifoPolicy(), ProbabilityPolicy(), RulesBaselinePolicy()):
        ranked = policy.rank(empty, NOW)
        assert len(ranked) == 0
        assert ranked.to_frame().empty


def test_large_queue_ranks_vectorised() -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    cases = pd.DataFrame(
        {
            "case_id": np.char.add("c", np.arange(n).astype(str)),
            "entity_type": rng.choice(["listing", "account", "group"], n),
            "enqueued_at": NOW - pd.to_timedelta(rng.uniform(0, 300, n), unit="h"),
            "probability": rng.uniform(0, 1, n),
            "exposure": rng.lognormal(6, 1, n),
        }
    )
    ranked = ExpectedLossPolicy().rank(cases, NOW)
    assert len(ranked) == n
    assert np.all(np.diff(ranked.priority) <= 0)
    assert len(ranked.to_frame(top=10)) == 10
