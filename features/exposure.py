"""Exposure: the loss a violation would cause if nobody acted on it, estimated from the record alone.

Expected loss = calibrated probability × exposure. The estimate is deliberately a plain business formula
that a risk lead can read and audit, kept here so training, evaluation and serving use the same one.
"""

from __future__ import annotations

import numpy as np

from features.schema import RawColumns

# A listing is usually found and taken down within a few weeks; beyond ~30 units the stock on offer says
# little about what will actually sell before then.
LISTING_UNITS_AT_RISK_CAP = 30.0
# Chargebacks cost the marketplace the order value plus a fee; an average fee-and-handling cost per case.
CHARGEBACK_COST = 25.0


def listing_exposure(c: RawColumns) -> np.ndarray:
    """Gross value at risk: price × units plausibly sold before takedown (stock, capped; 1 if unknown)."""
    stock = np.where(np.isnan(c["stock"]), 1.0, c["stock"])
    units = np.clip(stock, 1.0, LISTING_UNITS_AT_RISK_CAP)
    return np.nan_to_num(c["price"], nan=0.0) * units


def account_exposure(c: RawColumns) -> np.ndarray:
    """The next 90 days of the account's trade (its last 90-day GMV) plus the cost of its chargebacks."""
    gmv = np.nan_to_num(c["gmv_90d"], nan=0.0)
    chargebacks = np.nan_to_num(c["chargebacks_90d"], nan=0.0)
    return gmv + CHARGEBACK_COST * chargebacks
