"""Platt calibration of the booster's raw margin.

Platt (a logistic fit on the margin) rather than isotonic: it is monotone and strictly increasing, so it
keeps the booster's ranking intact (isotonic steps create ties, which a queue ordered by score cannot
afford), and it needs only two numbers to travel with the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression


@dataclass(frozen=True)
class PlattCalibration:
    slope: float
    intercept: float

    @classmethod
    def fit(cls, margin: np.ndarray, labels: np.ndarray) -> PlattCalibration:
        if len(np.unique(labels)) < 2:
            raise ValueError("calibration needs both classes in the calibration window")
        model = LogisticRegression(C=1e6, max_iter=1000).fit(margin.reshape(-1, 1), labels)
        return cls(slope=float(model.coef_[0, 0]), intercept=float(model.intercept_[0]))

    def transform(self, margin: np.ndarray) -> np.ndarray:
        return np.asarray(expit(self.slope * margin + self.intercept), dtype=np.float64)

    def to_dict(self) -> dict[str, float]:
        return {"slope": self.slope, "intercept": self.intercept}
