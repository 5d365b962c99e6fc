"""The risk team's metrics over scores as they were logged (the queue's order: probability and expected loss)."""

from __future__ import annotations

import math

import numpy as np

from training.metrics import capacity_metrics, expected_calibration_error, ranking_metrics


def scored_metrics(
    days: np.ndarray, label: np.ndarray, loss: np.ndarray, probability: np.ndarray, expected_loss: np.ndarray,
    k: int,
) -> dict[str, float]:
    """`training.metrics.evaluate_ranking`'s metrics for scores given as probability and expected loss (the
    queue's order). Ranking metrics are NaN when the cases hold one class only: there is nothing to rank."""
    if len(np.unique(label)) > 1:
        metrics = ranking_metrics(label, probability)
    else:
        metrics = {"roc_auc": math.nan, "pr_auc": math.nan,
                   "brier": float(np.mean((np.clip(probability, 0, 1) - label) ** 2)) if len(label) else math.nan,
                   "ece": expected_calibration_error(probability, label) if len(label) else math.nan,
                   "base_rate": float(label.mean()) if len(label) else math.nan}
    cap = capacity_metrics(days, label, loss, probability, expected_loss, k)
    metrics.update(precision_at_k=cap.precision_at_k, recall_at_k=cap.recall_at_k,
                   loss_captured_at_k=cap.loss_captured_at_k, k_per_day=float(k), days=float(cap.days))
    return metrics
