"""Decision thresholds on the calibrated probability, chosen at training time and shipped in the artifact.

Serving reads these; nothing downstream hard-codes a threshold of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIERS = ("P0", "P1", "P2", "P3")
_TIER_NAMES = np.asarray(TIERS, dtype=object)  # built once: indexing copies, so callers get their own array


@dataclass(frozen=True)
class TierThresholds:
    """A score at or above `p0` is P0, else at or above `p1` is P1, else at or above `p2` is P2, else P3."""

    p0: float
    p1: float
    p2: float

    def __post_init__(self) -> None:
        if not (self.p0 >= self.p1 >= self.p2):
            raise ValueError(f"tier thresholds must be non-increasing, got {self}")

    def assign(self, probability: np.ndarray) -> np.ndarray:
        idx = np.full(probability.shape, 3, dtype=np.int8)
        idx[probability >= self.p2] = 2
        idx[probability >= self.p1] = 1
        idx[probability >= self.p0] = 0
        return _TIER_NAMES[idx]

    def to_dict(self) -> dict[str, float]:
        return {"p0": self.p0, "p1": self.p1, "p2": self.p2}
