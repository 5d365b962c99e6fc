"""Raw columns → the model matrix. One transform for a whole training frame and for one JSON record."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd

from features.exposure import typical_exposure_inputs
from features.inputs import columns_from_frame, columns_from_records
from features.schema import FeatureKind, FeatureSet, RawColumns

DEFAULT_MAX_CATEGORIES = 256


class FeatureEncoder:
    """Computes the declared features and encodes categoricals as integer codes for LightGBM.

    Category vocabularies are learnt by `fit` (most frequent first) and travel with the model artifact,
    so an unseen category at serving time becomes "missing" (NaN) rather than an error or a wrong code.
    """

    def __init__(self, feature_set: FeatureSet, vocabularies: Mapping[str, Sequence[str]] | None = None,
                 typical: Mapping[str, float] | None = None):
        self.feature_set = feature_set
        self._set_vocabularies(vocabularies or {})
        self.typical: dict[str, float] = dict(typical or {})
        """Typical values of the exposure inputs in the training rows (`features.exposure.exposure_of`)."""

    def _set_vocabularies(self, vocabularies: Mapping[str, Sequence[str]]) -> None:
        self.vocabularies: dict[str, list[str]] = {k: list(v) for k, v in vocabularies.items()}
        self._codes = {name: {v: float(i) for i, v in enumerate(vals)} for name, vals in self.vocabularies.items()}

    @property
    def feature_names(self) -> list[str]:
        return self.feature_set.feature_names

    def fit(self, columns: RawColumns, max_categories: int = DEFAULT_MAX_CATEGORIES) -> Self:
        vocabularies = {}
        for spec in self.feature_set.features:
            if spec.kind is FeatureKind.CATEGORICAL:
                counts = Counter(v for v in spec.compute(columns) if v != "")
                vocabularies[spec.name] = [v for v, _ in counts.most_common(max_categories)]
        self._set_vocabularies(vocabularies)
        self.typical = typical_exposure_inputs(self.feature_set, columns)
        return self

    def feature_values(self, columns: RawColumns) -> dict[str, np.ndarray]:
        """Each feature's human-readable value (categories as strings), for reasons and reports."""
        return {spec.name: spec.compute(columns) for spec in self.feature_set.features}

    def transform(self, columns: RawColumns) -> np.ndarray:
        return self.encode_values(self.feature_values(columns))

    def encode_values(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """Model rows from readable feature values (`feature_values` or `decode` output): lets logged rows
        be re-encoded under another vocabulary without their raw records."""
        features = self.feature_set.features
        n = len(values[features[0].name]) if features else 0
        matrix = np.empty((n, len(features)), dtype=np.float64)
        for j, spec in enumerate(features):
            column = values[spec.name]
            if spec.kind is FeatureKind.CATEGORICAL:
                if spec.name not in self._codes:
                    raise RuntimeError(f"encoder has no vocabulary for {spec.name!r}: call fit first")
                codes = self._codes[spec.name]
                matrix[:, j] = [codes.get(v, np.nan) for v in column]
            else:
                matrix[:, j] = column
        return matrix

    def extended(
        self, values: Mapping[str, np.ndarray], max_categories: int = DEFAULT_MAX_CATEGORIES
    ) -> FeatureEncoder:
        """This encoder's vocabularies with codes unchanged, plus categories new in `values` (most frequent
        first), so rows encoded by this encoder stay valid under the new one."""
        vocabularies: dict[str, list[str]] = {}
        for name in self.feature_set.categorical_features:
            known = list(self.vocabularies.get(name, []))
            seen = set(known)
            counts = Counter(v for v in values[name] if v != "" and v not in seen)
            vocabularies[name] = known + [v for v, _ in counts.most_common(max(0, max_categories - len(known)))]
        return FeatureEncoder(self.feature_set, vocabularies, self.typical)

    def decode(self, matrix: np.ndarray, missing: object = None) -> dict[str, np.ndarray]:
        """Readable feature values back from model rows (categories from their codes; an unseen or missing
        category reads as `missing`: None for display, "" to match `feature_values`). Lets reasons be rebuilt
        from a logged vector without the raw record."""
        values: dict[str, np.ndarray] = {}
        for j, spec in enumerate(self.feature_set.features):
            column = matrix[:, j]
            if spec.kind is FeatureKind.CATEGORICAL:
                vocab = self.vocabularies[spec.name]
                values[spec.name] = np.array(
                    [missing if np.isnan(code) else vocab[int(code)] for code in column], dtype=object
                )
            else:
                values[spec.name] = column
        return values

    def schema_hash(self) -> str:
        """Identifies the meaning of a model row: feature names and category codes. Logged vectors can be
        reused for training only under the same hash."""
        payload = json.dumps({"features": self.feature_names, "vocabularies": self.vocabularies}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def transform_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return self.transform(columns_from_frame(frame, self.feature_set))

    def transform_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.transform(columns_from_records(records, self.feature_set))

    def to_dict(self) -> dict[str, Any]:
        return {"entity": str(self.feature_set.entity), "feature_names": self.feature_names,
                "vocabularies": self.vocabularies, "typical": self.typical}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], feature_set: FeatureSet) -> FeatureEncoder:
        if list(data["feature_names"]) != feature_set.feature_names:
            raise ValueError(
                "the model was trained on features "
                f"{data['feature_names']} but this code declares {feature_set.feature_names}: "
                "retrain, or serve with the code version the model was trained with"
            )
        # artifacts saved before typical inputs were kept have none: their exposure is the bare formula
        return cls(feature_set, data["vocabularies"], data.get("typical"))
