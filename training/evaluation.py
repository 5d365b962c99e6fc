"""Evaluate a scorer on a window, next to the oracle that ranks by the true probability and exposure."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import columns_from_frame
from models.artifact import ScorerArtifact
from training.datasets import LabelledEntities
from training.metrics import evaluate_ranking


@dataclass(frozen=True)
class WindowEvaluation:
    model: dict[str, float]
    oracle: dict[str, float] | None
    scored: pd.DataFrame  # id, day, label, loss, probability, exposure (+ oracle columns when known)

    def table(self) -> pd.DataFrame:
        rows = {"model": self.model}
        if self.oracle is not None:
            rows["oracle"] = self.oracle
        return pd.DataFrame(rows).T


def evaluate_window(artifact: ScorerArtifact, data: LabelledEntities, k: int) -> WindowEvaluation:
    fs = artifact.feature_set
    batch = artifact.score_columns(columns_from_frame(data.frame, fs))
    days = data.times.dt.floor("D").to_numpy()
    # the loss that really happens if a case is missed: ground truth where the data set has it, otherwise
    # the confirmed label times the same exposure estimate the queue uses
    if data.truth is not None and "loss_if_missed" in data.truth:
        loss = data.truth["loss_if_missed"].to_numpy(dtype=np.float64)
    else:
        loss = data.label * batch.exposure
    model = evaluate_ranking(days, data.label, loss, batch.probability, batch.exposure, k)
    scored = pd.DataFrame({
        fs.id_field: batch.ids, "day": days, "label": data.label, "loss": loss,
        "probability": batch.probability, "exposure": batch.exposure,
    })
    oracle = None
    if data.truth is not None and {"true_prob", "exposure_if_violation"} <= set(data.truth.columns):
        true_prob = data.truth["true_prob"].to_numpy(dtype=np.float64)
        true_exposure = data.truth["exposure_if_violation"].to_numpy(dtype=np.float64)
        oracle = evaluate_ranking(days, data.label, loss, true_prob, true_exposure, k)
        scored["true_prob"] = true_prob
        scored["true_exposure"] = true_exposure
    return WindowEvaluation(model=model, oracle=oracle, scored=scored)
