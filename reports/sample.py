"""A window of scored traffic as the monitor sees it: the encoded feature matrix plus the scores."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features import columns_from_frame
from models.artifact import ScorerArtifact


def category_decoder(vocabulary: Sequence[str]) -> Callable[[float], str]:
    def decode(code: float) -> str:
        index = int(code)
        return vocabulary[index] if 0 <= index < len(vocabulary) and index == code else f"code {code:g}"

    return decode


@dataclass(frozen=True)
class FeatureSample:
    """Encoded feature rows (categoricals as the encoder's integer codes, NaN for missing or unseen) and,
    optionally, the calibrated probabilities the model gave them."""

    matrix: np.ndarray
    feature_names: tuple[str, ...]
    scores: np.ndarray | None = None
    categorical: frozenset[str] = frozenset()
    vocabularies: Mapping[str, Sequence[str]] = field(default_factory=dict)
    times: np.ndarray | None = None  # datetime64[us] UTC, when known

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or self.matrix.shape[1] != len(self.feature_names):
            raise ValueError(f"matrix shape {self.matrix.shape} does not match {len(self.feature_names)} features")
        if self.scores is not None and len(self.scores) != len(self.matrix):
            raise ValueError("scores must have one value per matrix row")

    def __len__(self) -> int:
        return len(self.matrix)

    def decoders(self) -> dict[str, Callable[[float], str]]:
        return {name: category_decoder(vocab) for name, vocab in self.vocabularies.items()}

    def time_range(self) -> tuple[str, str] | None:
        if self.times is None or len(self.times) == 0:
            return None
        return str(np.min(self.times))[:19], str(np.max(self.times))[:19]

    @classmethod
    def from_matrix(
        cls, matrix: np.ndarray, artifact: ScorerArtifact, *, scores: np.ndarray | None = None,
        times: np.ndarray | None = None,
    ) -> FeatureSample:
        """Rows already encoded by ``artifact``'s encoder (e.g. ``ScoringLogReader.feature_matrix``)."""
        return cls(
            matrix=np.asarray(matrix, dtype=np.float64),
            feature_names=tuple(artifact.encoder.feature_names),
            scores=None if scores is None else np.asarray(scores, dtype=np.float64),
            categorical=frozenset(artifact.feature_set.categorical_features),
            vocabularies=dict(artifact.encoder.vocabularies),
            times=times,
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, artifact: ScorerArtifact, *, score: bool = True) -> FeatureSample:
        """Raw records (the data contract's columns): encoded and, with ``score``, scored by ``artifact``."""
        fs = artifact.feature_set
        columns = columns_from_frame(frame, fs)
        matrix = artifact.model_matrix(columns)
        times = pd.to_datetime(frame[fs.time_field], utc=True).dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
        return cls.from_matrix(matrix, artifact, scores=artifact.predict_proba(matrix) if score else None, times=times)
