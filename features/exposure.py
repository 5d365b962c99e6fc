"""Exposure: the loss a violation would cause if nobody acted on it, estimated from the record alone.

Expected loss = calibrated probability × exposure. The estimate is deliberately a plain business formula
that a risk lead can read and audit, kept here so training, evaluation and serving use the same one.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from features.schema import FeatureSet, RawColumns

# A listing is usually found and taken down within a few weeks; beyond ~30 units the stock on offer says
# little about what will actually sell before then.
LISTING_UNITS_AT_RISK_CAP = 30.0
# Chargebacks cost the marketplace the order value plus a fee; an average fee-and-handling cost per case.
CHARGEBACK_COST = 25.0

_LARGEST = float(np.finfo(np.float64).max)


def _nan_to_zero(values: np.ndarray) -> np.ndarray:
    """`np.nan_to_num(values, nan=0.0)` for float64 columns (NaN → 0, ±inf → ±largest float) in plain
    ufuncs: nan_to_num's own Python work costs ~10 µs a call, paid on every single-record request."""
    return np.minimum(np.maximum(np.where(np.isnan(values), 0.0, values), -_LARGEST), _LARGEST)


def listing_exposure(c: RawColumns) -> np.ndarray:
    """Gross value at risk: price × units plausibly sold before takedown (stock, capped; 1 if unknown)."""
    stock = np.where(np.isnan(c["stock"]), 1.0, c["stock"])
    # ndarray.clip: the same ufunc as np.clip without its Python wrapper
    units = stock.clip(1.0, LISTING_UNITS_AT_RISK_CAP)
    return _nan_to_zero(c["price"]) * units


def account_exposure(c: RawColumns) -> np.ndarray:
    """The next 90 days of the account's trade (its last 90-day GMV) plus the cost of its chargebacks."""
    gmv = _nan_to_zero(c["gmv_90d"])
    chargebacks = _nan_to_zero(c["chargebacks_90d"])
    return gmv + CHARGEBACK_COST * chargebacks


def typical_exposure_inputs(feature_set: FeatureSet, columns: RawColumns) -> dict[str, float]:
    """The median of each exposure input over the known values of `columns` (the training rows): what an
    unknown input is taken to be. An input never known in training falls back to the formula's own default."""
    typical: dict[str, float] = {}
    for name in feature_set.exposure_inputs:
        values = np.asarray(columns[name], dtype=np.float64)
        known = values[~np.isnan(values)]
        if len(known):
            typical[name] = float(np.median(known))
    return typical


def exposure_of(feature_set: FeatureSet, columns: RawColumns, typical: Mapping[str, float]) -> np.ndarray:
    """The feature set's exposure formula, with each unknown exposure input taken at its typical value (the
    training median, kept in the model artifact): a listing that omits its stock counts the stock listings
    typically have, not one unit; an account without its 90-day history counts a typical account's trade."""
    if not typical:
        return feature_set.exposure(columns)
    filled = dict(columns)
    for name, value in typical.items():
        column = np.asarray(columns[name], dtype=np.float64)
        if np.isnan(column).any():
            filled[name] = np.where(np.isnan(column), value, column)
    return feature_set.exposure(filled)
