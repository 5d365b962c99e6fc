"""The scorer as an MLflow pyfunc: `mlflow.pyfunc.load_model(uri).predict(raw_frame)` scores raw records.

Categories are encoded by our own `FeatureEncoder` inside the artifact, which sidesteps MLflow's generic
LightGBM/pandas categorical handling (it fails on category dtype and on plain strings alike).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc.model import PythonModel

from models.artifact import ScorerArtifact

ARTIFACT_KEY = "scorer"


class ScorerPyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        self.scorer = ScorerArtifact.load(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.scorer.score_frame(model_input)
