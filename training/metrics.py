"""The metrics a risk team reads: ranking quality, precision and recall at the daily review capacity,
loss captured at that capacity, and calibration."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


@dataclass(frozen=True)
class DailyCapacityResult:
    precision_at_k: float
    recall_at_k: float
    loss_captured_at_k: float
    days: int


def expected_calibration_error(probability: np.ndarray, label: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate − predicted probability| over equal-count bins, weighted by bin size."""
    order = np.argsort(probability, kind="stable")
    ece = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            ece += len(chunk) * abs(label[chunk].mean() - probability[chunk].mean())
    return float(ece / max(len(probability), 1))


def _top_k_per_day(days: np.ndarray, ranking: np.ndarray, k: int) -> np.ndarray:
    frame = pd.DataFrame({"day": days, "rank_value": ranking})
    rank = frame.groupby("day")["rank_value"].rank(method="first", ascending=False)
    return (rank <= k).to_numpy()


def capacity_metrics(
    days: np.ndarray, label: np.ndarray, loss: np.ndarray, rank_by_probability: np.ndarray,
    rank_by_loss: np.ndarray, k: int,
) -> DailyCapacityResult:
    """Investigators review the top `k` cases each day. Precision and recall use the probability ranking;
    loss captured uses the expected-loss ranking (what the queue is ordered by). Totals over all days."""
    top = _top_k_per_day(days, rank_by_probability, k)
    top_loss = _top_k_per_day(days, rank_by_loss, k)
    positives = label.sum()
    total_loss = loss.sum()
    return DailyCapacityResult(
        precision_at_k=float(label[top].mean()) if top.any() else 0.0,
        recall_at_k=float(label[top].sum() / positives) if positives else 0.0,
        loss_captured_at_k=float(loss[top_loss].sum() / total_loss) if total_loss > 0 else 0.0,
        days=len(np.unique(days)),
    )


def ranking_metrics(label: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(label, probability)),
        "pr_auc": float(average_precision_score(label, probability)),
        "brier": float(brier_score_loss(label, np.clip(probability, 0.0, 1.0))),
        "ece": expected_calibration_error(probability, label),
        "base_rate": float(label.mean()),
    }


def evaluate_ranking(
    days: np.ndarray, label: np.ndarray, loss: np.ndarray, probability: np.ndarray, exposure: np.ndarray, k: int
) -> dict[str, float]:
    metrics = ranking_metrics(label, probability)
    cap = capacity_metrics(days, label, loss, probability, probability * exposure, k)
    metrics.update(
        {
            "precision_at_k": cap.precision_at_k,
            "recall_at_k": cap.recall_at_k,
            "loss_captured_at_k": cap.loss_captured_at_k,
            "k_per_day": float(k),
            "days": float(cap.days),
        }
    )
    return metrics
