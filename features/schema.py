"""Declarations: the raw input fields an entity record carries and the model features derived from them.

Every feature is declared exactly once, here and in the entity modules, with the text a reviewer reads.
Training, serving, the API schema and the reasons all read these declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
RawColumns = Mapping[str, np.ndarray]
"""Raw inputs as columns: numbers and times (epoch seconds) as float64 with NaN for missing, text and
categories as object arrays of str. Built by `features.inputs` from a frame or from JSON records."""


class FieldKind(StrEnum):
    NUMBER = "number"
    INTEGER = "integer"
    TEXT = "text"
    CATEGORY = "category"
    TIME = "time"
    ID = "id"


class FeatureKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


@dataclass(frozen=True)
class RawField:
    """One field of an incoming record: its type, whether the caller must send it, and its limits."""

    name: str
    kind: FieldKind
    description: str
    required: bool = True
    ge: float | None = None
    le: float | None = None
    max_length: int | None = None
    example: object = None
    computed: bool = False
    """Filled in by the product (e.g. link-graph signals from the graph snapshot), never sent by callers: the
    API's request models leave it out."""


@dataclass(frozen=True)
class FeatureSpec:
    """A model feature: how it is computed from raw columns and how a reviewer reads it.

    `reason` is a template formatted with the feature's value (`{value}`) that states the fact a
    reviewer sees when the feature moves the score, e.g. "Priced at {value:.0%} of the reference price".
    """

    name: str
    kind: FeatureKind
    description: str
    reason: str
    inputs: tuple[str, ...]
    compute: Callable[[RawColumns], np.ndarray]
    risk_type: str | None = None
    """The violation type this signal usually points to; a case's likely type is its strongest reason's."""

    def reason_text(self, value: object) -> str:
        return format_reason(self.reason, value, self.description)


def raw_column(name: str) -> Callable[[RawColumns], np.ndarray]:
    """A feature that is one raw text/category column as it is (categories are encoded later)."""

    def compute(c: RawColumns) -> np.ndarray:
        return np.asarray(c[name], dtype=object)

    return compute


def format_reason(template: str, value: object, label: str) -> str:
    """Fill a reason template; a missing value reads "<label>: unknown" rather than "nan"."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return f"{label}: unknown"
    try:
        return template.format(value=value)
    except (ValueError, TypeError):
        # a numeric format applied to a category string: show the value as it is
        return f"{label}: {value}"


@dataclass(frozen=True)
class FeatureSet:
    """The raw inputs and the ordered model features of one entity type."""

    entity: str
    """The entity type's name in the registry (`triage.entities`)."""
    id_field: str
    time_field: str
    inputs: tuple[RawField, ...]
    features: tuple[FeatureSpec, ...]
    exposure: Callable[[RawColumns], np.ndarray]
    """Loss if the entity is a violation and nobody acts (see `features.exposure`)."""
    exposure_inputs: tuple[str, ...] = ()
    """The numeric raw fields `exposure` reads: an unknown one takes its typical value from the training data
    (`features.exposure.exposure_of`), so a record that omits them is not ranked as if it were worth nothing."""
    graph: object = None
    """The link-graph feature config (`features.graph.GraphFeatureConfig`) when the entity type has group and
    neighbour features computed from a graph snapshot; None otherwise."""
    declaration: Mapping[str, object] | None = field(default=None, compare=False)
    """For a feature set built from data (an adapter's, `features.external`): the declaration that rebuilds
    it, saved with every model trained on it so the model loads back without the code that declared it."""
    by_name: Mapping[str, FeatureSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate feature names in {self.entity}: {names}")
        known = {f.name for f in self.inputs}
        for spec in self.features:
            missing = set(spec.inputs) - known
            if missing:
                raise ValueError(f"feature {spec.name!r} reads undeclared inputs {sorted(missing)}")
        object.__setattr__(self, "by_name", {f.name: f for f in self.features})

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind is FeatureKind.CATEGORICAL]

    def input(self, name: str) -> RawField:
        for f in self.inputs:
            if f.name == name:
                return f
        raise KeyError(name)
