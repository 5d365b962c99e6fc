"""Queue simulation: hand-computed steps, conservation, fairness and policy comparisons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from policy.config import CapacityConfig, QueuePolicyConfig, SimulationConfig
from policy.priority import ExpectedLossPolicy, FifoPolicy, OraclePolicy, ProbabilityPolicy, RulesBaselinePolicy
from policy.simulation import compare_policies, per_day_frame, plot_comparison, run_policies, simulate_queue

START = pd.Timestamp("2024-03-01", tz="UTC")
CONFIG = QueuePolicyConfig()
FAST = SimulationConfig(step_hours=2.0)
RISK_TYPES = ["counterfeit", "scam_seller", "prohibited_item", "misleading_listing"]


def make_arrivals(n: int, days: int, seed: int = 0, noise: float | None = 0.7) -> pd.DataFrame:
    """Synthetic arrivals; ``noise=None`` makes the model scores equal to the truth."""
    rng = np.random.default_rng(seed)
    true_prob = rng.beta(0.5, 15, n)
    true_exposure = rng.lognormal(6, 1.2, n)
    violation = rng.random(n) < true_prob
    if noise is None:
        probability, exposure = true_prob, true_exposure
    else:
        logit = np.log(true_prob / (1 - true_prob)) + rng.normal(0, noise, n)
        probability = 1 / (1 + np.exp(-logit))
        exposure = true_exposure * rng.lognormal(0, 0.5, n)
    return pd.DataFrame(
        {
            "case_id": [f"C{i}" for i in range(n)],
            "entity_type": rng.choice(["listing", "account", "group"], n, p=[0.8, 0.17, 0.03]),
            "arrived_at": START + pd.to_timedelta(rng.uniform(0, days * 24, n), unit="h"),
            "probability": probability,
            "exposure": exposure,
            "true_prob": true_prob,
            "true_exposure": true_exposure,
            "is_violation": violation,
            "loss_if_missed": violation * true_exposure,
            "risk_type": np.where(violation, rng.choice(RISK_TYPES, n), "none"),
        }
    )


def one_case(**overrides: object) -> pd.DataFrame:
    row: dict[str, object] = {
        "case_id": "x",
        "entity_type": "listing",
        "arrived_at": START + pd.Timedelta(hours=0.5),
        "probability": 0.5,
        "exposure": 1_000.0,
        "true_prob": 0.5,
        "true_exposure": 1_000.0,
        "is_violation": True,
        "loss_if_missed": 1_000.0,
        "risk_type": "scam_seller",
    }
    row.update(overrides)
    return pd.DataFrame([row])


ONE_INVESTIGATOR = CapacityConfig(investigators=1, shift_hours=8, productive_share=0.75)  # 15 min/hour


def test_single_case_hand_computed() -> None:
    result = simulate_queue(
        one_case(),
        ExpectedLossPolicy(),
        ONE_INVESTIGATOR,
        CONFIG,
        START,
        1,
        simulation=SimulationConfig(step_hours=1.0),
    )
    # Joins at the 1 h step, takes 6 of the 15 minutes that hour: done at 1.4 h, waited 0.9 h.
    case = result.cases.iloc[0]
    assert case["outcome"] == "reviewed"
    assert case["wait_hours"] == pytest.approx(0.9)
    assert case["reviewed_at"] == START + pd.Timedelta(hours=1.4)
    expected = 1_000 * 0.5 ** (0.9 / 24)  # scam_seller half-life 24 h
    assert result.totals["loss_prevented"] == pytest.approx(expected)
    assert result.totals["share_of_loss_prevented"] == pytest.approx(expected / 1_000)
    assert result.totals["reviewer_hours"] == pytest.approx(0.1)
    assert result.totals["capacity_hours"] == pytest.approx(6.0)
    assert result.totals["precision"] == 1.0
    assert case["tier"] == "P2" and bool(case["sla_met"])
    assert result.per_day["loss_prevented"].sum() == pytest.approx(expected)


def test_long_case_waits_for_carried_over_minutes() -> None:
    # A 60-minute group case with 15 review minutes per hour: minutes accumulate over 4 steps.
    result = simulate_queue(
        one_case(entity_type="group"),
        FifoPolicy(),
        ONE_INVESTIGATOR,
        CONFIG,
        START,
        1,
        simulation=SimulationConfig(step_hours=1.0),
    )
    assert result.cases.iloc[0]["reviewed_at"] == START + pd.Timedelta(hours=5)
    assert result.totals["reviewer_hours"] == pytest.approx(1.0)


def test_unreviewed_cases_expire_with_their_loss_incurred() -> None:
    arrivals = make_arrivals(200, days=2, seed=4)
    nobody = CapacityConfig(investigators=0)
    simulation = SimulationConfig(step_hours=1.0, max_age_hours=24)
    result = simulate_queue(arrivals, ExpectedLossPolicy(), nobody, CONFIG, START, 5, simulation=simulation)
    assert result.totals["loss_prevented"] == 0
    assert result.totals["reviewed"] == 0
    assert result.totals["expired"] == 200
    assert result.totals["sla_breaches"] == 200
    assert (result.cases["outcome"] == "expired").all()
    assert np.isnan(result.totals["precision"])


def test_sla_breach_when_reviewed_after_due() -> None:
    # Two P0 cases (4 h SLA) and 15 minutes an hour: the 60-minute group case finishes at 5 h, late.
    arrivals = pd.concat(
        [
            one_case(
                case_id="g",
                entity_type="group",
                exposure=20_000.0,
                true_exposure=20_000.0,
                loss_if_missed=20_000.0,
                arrived_at=START,
            ),
            one_case(case_id="l", exposure=10_000.0, true_exposure=10_000.0, loss_if_missed=10_000.0, arrived_at=START),
        ],
        ignore_index=True,
    )
    result = simulate_queue(
        arrivals, ExpectedLossPolicy(), ONE_INVESTIGATOR, CONFIG, START, 1, simulation=SimulationConfig(step_hours=1.0)
    )
    cases = result.cases.set_index("case_id")
    assert list(cases["tier"]) == ["P0", "P0"]
    assert cases.loc["g", "reviewed_at"] == START + pd.Timedelta(hours=4)  # fits at the 3 h step
    assert not bool(cases.loc["l", "sla_met"])  # waits behind it: done at 4.4 h > 4 h due
    assert result.totals["sla_breaches_reviewed_late"] == 1
    assert result.sla_attainment(("P0",)) == pytest.approx(0.5)


def test_conservation_and_bounds() -> None:
    arrivals = make_arrivals(3_000, days=10, seed=1)
    capacity = CapacityConfig(investigators=3)
    results = run_policies(
        arrivals,
        {"el": ExpectedLossPolicy(), "fifo": FifoPolicy(), "prob": ProbabilityPolicy(), "rules": RulesBaselinePolicy()},
        capacity,
        CONFIG,
        START,
        10,
        simulation=FAST,
    )
    for result in results.values():
        totals, cases, per_day = result.totals, result.cases, result.per_day
        assert 0 < totals["loss_prevented"] <= totals["total_loss"]
        assert (cases["loss_prevented"] <= cases["loss_if_missed"] + 1e-9).all()
        assert totals["reviewer_hours"] <= totals["capacity_hours"] + 1e-9
        assert (per_day["reviewer_hours"] <= per_day["capacity_hours"] + 1 + 1e-9).all()  # ≤ 1 h carry-over
        assert 0 <= totals["precision"] <= 1
        assert per_day["precision"].dropna().between(0, 1).all()
        assert totals["reviewed"] + totals["expired"] + totals["open_at_end"] == totals["arrivals"] == 3_000
        assert per_day["reviewed"].sum() == totals["reviewed"]
        assert per_day["caught"].sum() == totals["caught"]
        assert per_day["loss_prevented"].sum() == pytest.approx(totals["loss_prevented"])
        assert per_day["loss_arrived"].sum() == pytest.approx(totals["total_loss"])
        assert totals["total_loss"] == pytest.approx(arrivals["loss_if_missed"].sum())
    # Same arrivals and capacity for everyone.
    assert len({r.totals["total_loss"] for r in results.values()}) == 1
    assert len({r.totals["capacity_hours"] for r in results.values()}) == 1


def test_expected_loss_equals_oracle_when_scores_are_the_truth() -> None:
    arrivals = make_arrivals(2_000, days=7, seed=2, noise=None)
    capacity = CapacityConfig(investigators=2)
    frame = compare_policies(
        arrivals,
        {"el": ExpectedLossPolicy(), "oracle": OraclePolicy()},
        capacity,
        CONFIG,
        START,
        7,
        simulation=FAST,
    )
    prevented = frame["loss_prevented"].astype(float)
    assert prevented["el"] == pytest.approx(prevented["oracle"])
    assert frame["reviewed"]["el"] == frame["reviewed"]["oracle"]
    assert float(frame["share_of_oracle_prevented"]["el"]) == pytest.approx(1.0)


def test_noisy_expected_loss_beats_fifo_by_a_wide_margin() -> None:
    arrivals = make_arrivals(3_000, days=10, seed=3, noise=1.0)
    capacity = CapacityConfig(investigators=3)
    policies = {"expected_loss": ExpectedLossPolicy(), "fifo": FifoPolicy(), "oracle": OraclePolicy()}
    frame = compare_policies(arrivals, policies, capacity, CONFIG, START, 10, simulation=FAST)
    assert list(frame.index) == ["expected_loss", "fifo", "oracle"]
    prevented = frame["loss_prevented"].astype(float)
    assert prevented["expected_loss"] > 2 * prevented["fifo"]
    assert float(frame["multiple_of_fifo_prevented"]["expected_loss"]) > 2
    assert prevented["oracle"] >= prevented["fifo"]


def test_only_arrivals_in_the_window_are_simulated() -> None:
    arrivals = make_arrivals(500, days=4, seed=5)
    result = simulate_queue(
        arrivals, FifoPolicy(), CapacityConfig(), CONFIG, START + pd.Timedelta(days=1), 2, simulation=FAST
    )
    arrived = arrivals["arrived_at"]
    in_window = (arrived >= START + pd.Timedelta(days=1)) & (arrived < START + pd.Timedelta(days=3))
    assert result.totals["arrivals"] == in_window.sum()
    assert len(result.per_day) == 2


def test_plot_comparison_writes_png(tmp_path: Path) -> None:
    arrivals = make_arrivals(600, days=3, seed=6)
    policies = {"expected_loss": ExpectedLossPolicy(), "fifo": FifoPolicy()}
    results = run_policies(arrivals, policies, CapacityConfig(investigators=1), CONFIG, START, 3, simulation=FAST)
    from policy.simulation import summarise

    path = plot_comparison(summarise(results), per_day_frame(results), tmp_path / "out" / "comparison.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_arrivals_contract_is_enforced() -> None:
    with pytest.raises(ValueError, match="true_prob"):
        simulate_queue(one_case().drop(columns="true_prob"), FifoPolicy(), CapacityConfig(), CONFIG, START, 1)
