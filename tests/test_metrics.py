from __future__ import annotations

import numpy as np
import pytest

from models.calibration import PlattCalibration
from models.tiers import TierThresholds
from training.metrics import capacity_metrics, expected_calibration_error, ranking_metrics


def test_capacity_metrics_by_hand() -> None:
    days = np.array([1, 1, 1, 2, 2, 2])
    label = np.array([1, 0, 1, 0, 0, 1])
    loss = np.array([100.0, 0.0, 10.0, 0.0, 0.0, 50.0])
    prob = np.array([0.9, 0.8, 0.1, 0.7, 0.6, 0.5])
    by_loss = np.array([5.0, 1.0, 9.0, 1.0, 2.0, 3.0])
    result = capacity_metrics(days, label, loss, prob, by_loss, k=1)
    # day 1 top by probability: row 0 (violation); day 2: row 3 (not)
    assert result.precision_at_k == pytest.approx(0.5)
    assert result.recall_at_k == pytest.approx(1 / 3)
    # by expected loss day 1 picks row 2 (loss 10), day 2 picks row 5 (loss 50): 60 of 160
    assert result.loss_captured_at_k == pytest.approx(60 / 160)
    assert result.days == 2


def test_perfect_and_constant_calibration() -> None:
    rng = np.random.default_rng(0)
    prob = rng.uniform(0, 1, 20_000)
    label = (rng.uniform(0, 1, 20_000) < prob).astype(int)
    assert expected_calibration_error(prob, label) < 0.02
    assert expected_calibration_error(np.full(20_000, 0.9), label) > 0.3
    metrics = ranking_metrics(label, prob)
    assert 0.8 < metrics["roc_auc"] < 0.9 and 0 < metrics["brier"] < 0.25


def test_platt_calibration_recovers_a_known_slope_and_keeps_order() -> None:
    rng = np.random.default_rng(1)
    margin = rng.normal(0, 2, 50_000)
    label = (rng.uniform(size=margin.size) < 1 / (1 + np.exp(-(0.5 * margin - 2)))).astype(int)
    cal = PlattCalibration.fit(margin, label)
    assert cal.slope == pytest.approx(0.5, abs=0.05) and cal.intercept == pytest.approx(-2, abs=0.1)
    out = cal.transform(np.sort(margin))
    assert np.all(np.diff(out) >= 0)
    with pytest.raises(ValueError, match="both classes"):
        PlattCalibration.fit(margin[:10], np.zeros(10))


def test_tier_thresholds_assign_and_validate() -> None:
    tiers = TierThresholds(p0=0.8, p1=0.5, p2=0.1)
    assert tiers.assign(np.array([0.9, 0.8, 0.6, 0.1, 0.05])).tolist() == ["P0", "P0", "P1", "P2", "P3"]
    with pytest.raises(ValueError, match="non-increasing"):
        TierThresholds(p0=0.1, p1=0.5, p2=0.2)
