"""Bring your own table: declare an external table as a FeatureSet so the product's encoder, trainer,
artifact and evaluation run on it unchanged. See docs/adapters.md.

The adapter is pure data (names and texts, no callables), so it can travel inside a scorer artifact as
JSON and rebuild exactly the same FeatureSet when the artifact is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from features.schema import FeatureKind, FeatureSet, FeatureSpec, FieldKind, RawColumns, RawField
from triage.entities import ENTITIES, EntitySpec

ADAPTER_KIND = "tabular"
DEFAULT_TIME_FIELD = "observed_at"
CONSTANT_TIME = pd.Timestamp("1970-01-01", tz="UTC")
"""The time given to every row of a table without a time column: the whole table is one "day"."""


@dataclass(frozen=True)
class TabularAdapter:
    """An external table as an entity: one row per entity, an id, a 0/1 label and feature columns.

    name: the entity name (used for the encoder, artifact and capacity settings; not a built-in entity).
    id_field / label_field: the id column and the observed 0/1 label (never a feature).
    numeric / categorical: feature columns, used as they are (identity features).
    time_field: the time each row is scored at; None for tables without time (a constant time is used).
    label_time_field: when each row's label became known (None: known at the row's time).
    exposure_field: the loss if the row is a violation (None: 1 for every row, so expected loss =
        probability and the queue ranks by probability).
    required: feature columns a caller must send (default: none; missing values become NaN / "").
    descriptions / reasons: per column, the text a reviewer reads; reasons are templates with {value}.
    """

    name: str
    id_field: str
    label_field: str
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    time_field: str | None = None
    label_time_field: str | None = None
    exposure_field: str | None = None
    required: tuple[str, ...] = ()
    descriptions: Mapping[str, str] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # accept lists from callers and JSON, keep tuples so the declaration stays immutable
        for name in ("numeric", "categorical", "required"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "descriptions", dict(self.descriptions))
        object.__setattr__(self, "reasons", dict(self.reasons))
        if self.name in ENTITIES and not _is_adapter(ENTITIES.get(self.name)):
            raise ValueError(f"{self.name!r} is a built-in entity: name the external table differently")
        features = [*self.numeric, *self.categorical]
        if len(set(features)) != len(features):
            raise ValueError("a column is declared twice among numeric and categorical")
        reserved = {self.id_field, self.label_field, self.effective_time_field}
        clash = reserved & set(features)
        if clash:
            raise ValueError(f"id, label and time columns cannot be features: {sorted(clash)}")
        if self.exposure_field in {self.id_field, self.label_field} or self.exposure_field in self.categorical:
            raise ValueError("the exposure column must be a numeric column other than id and label")
        unknown = set(self.required) - set(features)
        if unknown:
            raise ValueError(f"required columns {sorted(unknown)} are not declared features")

    @property
    def effective_time_field(self) -> str:
        return self.time_field or DEFAULT_TIME_FIELD

    # -- the FeatureSet ----------------------------------------------------------------------------
    def feature_set(self) -> FeatureSet:
        inputs: list[RawField] = [
            RawField(self.id_field, FieldKind.ID, self._describe(self.id_field), max_length=256),
            # a table without time gets an optional time field, so windows and days still work
            RawField(self.effective_time_field, FieldKind.TIME, self._describe(self.effective_time_field),
                     required=self.time_field is not None),
        ]
        inputs += [RawField(c, FieldKind.NUMBER, self._describe(c), required=c in self.required)
                   for c in self.numeric]
        inputs += [RawField(c, FieldKind.CATEGORY, self._describe(c), required=c in self.required, max_length=256)
                   for c in self.categorical]
        if self.exposure_field is not None and self.exposure_field not in self.numeric:
            inputs.append(RawField(self.exposure_field, FieldKind.NUMBER, self._describe(self.exposure_field),
                                   required=False, ge=0))
        features = [
            FeatureSpec(c, FeatureKind.NUMERIC, self._describe(c), self.reasons.get(c, f"{c} = {{value:.4g}}"),
                        (c,), _numeric(c))
            for c in self.numeric
        ] + [
            FeatureSpec(c, FeatureKind.CATEGORICAL, self._describe(c), self.reasons.get(c, f"{c} = {{value}}"),
                        (c,), _categorical(c))
            for c in self.categorical
        ]
        return FeatureSet(
            entity=self.name,
            id_field=self.id_field,
            time_field=self.effective_time_field,
            inputs=tuple(inputs),
            features=tuple(features),
            exposure=_exposure(self.exposure_field),
            declaration=self.to_dict(),
        )

    def _describe(self, column: str) -> str:
        return self.descriptions.get(column, column)

    # -- the entity registry -----------------------------------------------------------------------
    def entity_spec(self, review_capacity_per_day: int = 100, handle_minutes: float = 10.0) -> EntitySpec:
        """This table as an entity type of the registry (`triage.entities`), with its feature set."""
        return EntitySpec(name=self.name, plural=f"{self.name}s", description=f"Rows of the {self.name} table",
                          features=self.feature_set(), review_capacity_per_day=review_capacity_per_day,
                          handle_minutes=handle_minutes, segments=self.categorical)

    def register(self, review_capacity_per_day: int = 100, handle_minutes: float = 10.0) -> EntitySpec:
        """Register the table's entity type, so stores, policy, training and serving accept it; registering
        the same declaration again is a no-op."""
        return ENTITIES.register(self.entity_spec(review_capacity_per_day, handle_minutes))

    # -- data --------------------------------------------------------------------------------------
    def prepare(self, table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
        """Split a labelled table into (raw frame without the label, 0/1 labels, label availability
        times), filling the constant time when the table has none. The pieces of a LabelledEntities."""
        missing = {self.id_field, self.label_field} - set(table.columns)
        if missing:
            raise KeyError(f"table {self.name!r} lacks columns {sorted(missing)}")
        frame = table.drop(columns=[self.label_field]).reset_index(drop=True)
        if self.time_field is None:
            frame[DEFAULT_TIME_FIELD] = CONSTANT_TIME
        label = pd.to_numeric(table[self.label_field], errors="raise").to_numpy()
        if not np.isin(label, (0, 1)).all():
            raise ValueError(f"label column {self.label_field!r} must hold 0/1 values")
        source = table[self.label_time_field] if self.label_time_field is not None else frame[self.effective_time_field]
        available = pd.Series(pd.to_datetime(source, utc=True).to_numpy(), name="label_available_at")
        return frame, label.astype(np.int8), pd.to_datetime(available, utc=True)

    # -- persistence -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": ADAPTER_KIND, "name": self.name, "id_field": self.id_field, "label_field": self.label_field,
            "numeric": list(self.numeric), "categorical": list(self.categorical), "time_field": self.time_field,
            "label_time_field": self.label_time_field, "exposure_field": self.exposure_field,
            "required": list(self.required), "descriptions": dict(self.descriptions), "reasons": dict(self.reasons),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TabularAdapter:
        if data.get("kind") != ADAPTER_KIND:
            raise ValueError(f"not a tabular adapter declaration: kind={data.get('kind')!r}")
        return cls(
            name=data["name"], id_field=data["id_field"], label_field=data["label_field"],
            numeric=tuple(data.get("numeric", ())), categorical=tuple(data.get("categorical", ())),
            time_field=data.get("time_field"), label_time_field=data.get("label_time_field"),
            exposure_field=data.get("exposure_field"), required=tuple(data.get("required", ())),
            descriptions=dict(data.get("descriptions", {})), reasons=dict(data.get("reasons", {})),
        )

    def with_numeric(self, columns: Sequence[str], descriptions: Mapping[str, str] | None = None,
                     reasons: Mapping[str, str] | None = None) -> TabularAdapter:
        """The same declaration with more numeric columns, e.g. the graph columns of features.graph."""
        return TabularAdapter(**{
            **self.to_dict_fields(),
            "numeric": (*self.numeric, *columns),
            "descriptions": {**self.descriptions, **(descriptions or {})},
            "reasons": {**self.reasons, **(reasons or {})},
        })

    def to_dict_fields(self) -> dict[str, Any]:
        data = self.to_dict()
        data.pop("kind")
        return data


def feature_set_from_declaration(declaration: Mapping[str, Any]) -> FeatureSet:
    """Rebuild a FeatureSet from an adapter declaration stored with a model (see docs/adapters.md)."""
    return TabularAdapter.from_dict(declaration).feature_set()


def _is_adapter(spec: EntitySpec) -> bool:
    # built-in entity types name their feature set by import path; an adapter's carries the object itself
    return spec.features is not None and not isinstance(spec.features, str)


def _numeric(column: str) -> Callable[[RawColumns], np.ndarray]:
    def compute(c: RawColumns) -> np.ndarray:
        return np.asarray(c[column], dtype=np.float64)

    return compute


def _categorical(column: str) -> Callable[[RawColumns], np.ndarray]:
    def compute(c: RawColumns) -> np.ndarray:
        return np.asarray(c[column], dtype=object)

    return compute


def _exposure(column: str | None) -> Callable[[RawColumns], np.ndarray]:
    def constant(c: RawColumns) -> np.ndarray:
        return np.ones(len(next(iter(c.values()))) if c else 0)

    def named(c: RawColumns) -> np.ndarray:
        # unknown exposure contributes nothing to expected loss rather than NaN through the queue
        return np.nan_to_num(np.asarray(c[cast(str, column)], dtype=np.float64), nan=0.0)

    return constant if column is None else named
