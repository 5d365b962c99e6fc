"""The promotion rule: when a challenger beats the champion. One rule for `triage train` (gated promotion)
and `triage retrain` (the closed loop)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

LOWER_IS_BETTER = frozenset({"brier", "ece"})
# Counts and settings that the evaluations report beside the metrics; not something a model wins on.
NOT_COMPARED = frozenset({"base_rate", "k_per_day", "days"})
COMPARED_METRICS = ("roc_auc", "pr_auc", "brier", "ece", "precision_at_k", "recall_at_k", "loss_captured_at_k")


def challenger_wins(challenger: float, champion: float, metric: str, margin: float) -> bool:
    """Better by more than `margin` (higher, or lower for brier/ece). NaN never wins."""
    if metric in LOWER_IS_BETTER:
        return bool(challenger < champion - margin)
    return bool(challenger > champion + margin)


def metric_table(champion: Mapping[str, float], challenger: Mapping[str, float]) -> pd.DataFrame:
    """Challenger vs champion per metric, with the difference and which is better."""
    rows = []
    for name in champion:
        if name in NOT_COMPARED or name not in challenger:
            continue
        a, b = float(champion[name]), float(challenger[name])
        if not (math.isfinite(a) and math.isfinite(b)) or a == b:
            better = "-"
        else:
            better = "challenger" if challenger_wins(b, a, name, 0.0) else "champion"
        rows.append({"metric": name, "champion": a, "challenger": b, "difference": b - a, "better": better})
    return pd.DataFrame(rows, columns=["metric", "champion", "challenger", "difference", "better"]).set_index("metric")
