"""Arrival times: mild growth over the window, weekly seasonality and a daily rhythm."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from synthetic._types import FloatArray

_US_PER_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Relative activity per hour of day (UTC): quiet nights, busy evenings.
_HOURLY = np.array(
    [0.35, 0.25, 0.2, 0.2, 0.25, 0.35, 0.55, 0.8, 1.0, 1.1, 1.15, 1.2,
     1.2, 1.2, 1.15, 1.15, 1.2, 1.3, 1.45, 1.55, 1.5, 1.3, 0.95, 0.6]
)


def hourly_cdf(start: datetime, days: int, growth: float, weekly_amplitude: float) -> FloatArray:
    """Cumulative arrival share at each hour boundary (length 24 * days + 1, from 0 to 1)."""
    hours = np.arange(24 * days, dtype=np.float64)
    day_offset = hours / 24.0
    weekday = (start.weekday() + (hours // 24).astype(np.int64)) % 7
    weekly = np.where(weekday >= 5, 1.0 + weekly_amplitude, 1.0 - weekly_amplitude * 2.0 / 5.0)
    trend = 1.0 + growth * day_offset / max(days, 1)
    weights = trend * weekly * np.tile(_HOURLY, days)
    cdf = np.concatenate(([0.0], np.cumsum(weights)))
    return cdf / cdf[-1]


def sample_days(
    rng: np.random.Generator,
    cdf: FloatArray,
    n: int,
    lower_days: FloatArray | None = None,
) -> FloatArray:
    """Arrival offsets in (fractional) days from the window start, optionally truncated below per row.

    Truncation works on the quantile scale so rows that must happen after some event (a listing after its
    seller's creation) still follow the growth and seasonality of the window.
    """
    hours = len(cdf) - 1
    grid = np.arange(hours + 1, dtype=np.float64)
    u = rng.random(n)
    if lower_days is not None:
        lo_hours = np.clip(lower_days * 24.0, 0.0, float(hours))
        lo_q = np.interp(lo_hours, grid, cdf)
        u = lo_q + u * (1.0 - lo_q)
    return np.interp(u, cdf, grid) / 24.0


def to_timestamps(start: datetime, offset_days: FloatArray) -> pd.Series:
    """Offsets in days to a tz-aware UTC microsecond timestamp series."""
    base = (start - _EPOCH) // timedelta(microseconds=1)
    micros = base + np.round(offset_days * _US_PER_DAY).astype(np.int64)
    values = micros.astype("datetime64[us]")
    return pd.Series(pd.DatetimeIndex(values).tz_localize("UTC"))
