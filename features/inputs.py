"""Turn a pandas frame (training, batch) or JSON records (serving) into the same raw columns.

This is the only place where the two input shapes differ; everything after it is one code path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from features.schema import FeatureSet, FieldKind

Values = Sequence[Any] | pd.Series


def epoch_seconds(values: Values | np.ndarray) -> np.ndarray:
    """Times (a pandas column, or a list of datetimes) as float64 epoch seconds, NaN for missing."""
    if isinstance(values, pd.Series):
        # whole microseconds fit a float64 exactly, so dividing once gives the same correctly rounded
        # seconds as datetime.timestamp() on the record path (nanoseconds would not fit)
        stamps = pd.to_datetime(values, utc=True).dt.tz_convert(None).dt.as_unit("us").to_numpy()
        out = stamps.view(np.int64) / 1e6
        out[np.isnat(stamps)] = np.nan
        return out
    return np.array(
        [v.timestamp() if isinstance(v, datetime) else np.nan for v in values], dtype=np.float64
    )


def _numbers(values: Values) -> np.ndarray:
    if isinstance(values, pd.Series):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.array(values, dtype=np.float64)


def _strings(values: Values) -> np.ndarray:
    # text, categories and ids: plain Python str, "" for missing, so that both paths see equal values
    if isinstance(values, pd.Series):
        if isinstance(values.dtype, pd.StringDtype):
            # a string column holds only str or missing: the same array, without a Python loop per value
            return values.to_numpy(dtype=object, na_value="")
        values = values.astype(object).where(values.notna(), "").tolist()
    return np.array(["" if v is None else str(v) for v in values], dtype=object)


_CONVERTERS: Mapping[FieldKind, Callable[[Values], np.ndarray]] = {
    FieldKind.TIME: epoch_seconds,
    FieldKind.NUMBER: _numbers,
    FieldKind.INTEGER: _numbers,
    FieldKind.TEXT: _strings,
    FieldKind.CATEGORY: _strings,
    FieldKind.ID: _strings,
}


def columns_from_frame(frame: pd.DataFrame, feature_set: FeatureSet) -> dict[str, np.ndarray]:
    """Raw columns from a frame holding the entity's raw fields (optional ones may be absent)."""
    columns: dict[str, np.ndarray] = {}
    for raw in feature_set.inputs:
        convert = _CONVERTERS[raw.kind]
        if raw.name in frame.columns:
            columns[raw.name] = convert(frame[raw.name])
        elif raw.required:
            raise KeyError(f"{feature_set.entity} frame lacks required field {raw.name!r}")
        else:
            columns[raw.name] = convert([None] * len(frame))
    return columns


def columns_from_records(
    records: Sequence[Mapping[str, Any]], feature_set: FeatureSet
) -> dict[str, np.ndarray]:
    """Raw columns from already-validated JSON records (dicts); absent optional fields become missing."""
    return {
        raw.name: _CONVERTERS[raw.kind]([r.get(raw.name) for r in records]) for raw in feature_set.inputs
    }
