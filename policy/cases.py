"""The case-frame column contract and small vectorised helpers on it.

A *case frame* is a pandas DataFrame with one row per open case:

| column | type | meaning |
|---|---|---|
| ``case_id`` | str | unique within the frame |
| ``entity_type`` | str | ``listing``, ``account`` or ``group`` |
| ``enqueued_at`` | tz-aware timestamp | when the case entered the queue (kept across re-scoring) |
| ``probability`` | float in [0, 1] | calibrated model probability of a violation (current score) |
| ``exposure`` | float ≥ 0 | model estimate of the loss if it is a violation |
| ``risk_type`` | str, optional | predicted or known risk type, shown in reasons |
| ``members`` | list of ids, optional | for ``group`` cases, the member entity ids |

Policies may read more columns (the oracle reads ``true_prob``/``true_exposure``, the rules baseline
reads raw columns); each policy lists them in ``input_columns``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from policy.config import HandleTimeConfig
from triage.entities import ENTITIES

CASE_COLUMNS: tuple[str, ...] = ("case_id", "entity_type", "enqueued_at", "probability", "exposure")
OPTIONAL_CASE_COLUMNS: tuple[str, ...] = ("risk_type", "members")


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...] | list[str], what: str = "cases") -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame is missing columns {missing}")


def validate_cases(cases: pd.DataFrame) -> None:
    """Check the case-frame contract; raises ``ValueError`` with what is wrong."""
    require_columns(cases, CASE_COLUMNS)
    if cases["case_id"].duplicated().any():
        dupes = cases.loc[cases["case_id"].duplicated(), "case_id"].head(5).tolist()
        raise ValueError(f"case_id must be unique in a queue; duplicated e.g. {dupes} (see upsert_cases)")
    unknown = set(pd.unique(cases["entity_type"])) - set(ENTITIES.names())
    if unknown:
        raise ValueError(f"unknown entity_type values {sorted(map(str, unknown))}; expected {ENTITIES.names()}")
    if not isinstance(cases["enqueued_at"].dtype, pd.DatetimeTZDtype):
        raise ValueError("enqueued_at must be a tz-aware (UTC) timestamp column")


def utc_now_ns(now: datetime | pd.Timestamp) -> np.int64:
    """``now`` as int64 nanoseconds since the epoch; naive datetimes are rejected, not guessed."""
    stamp = pd.Timestamp(now)
    if stamp.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    return np.int64(stamp.tz_convert(UTC).as_unit("ns").value)


def timestamps_ns(column: pd.Series) -> np.ndarray:
    """A tz-aware timestamp column as int64 nanoseconds since the epoch (UTC)."""
    values = column.dt.tz_convert(UTC).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return values.view(np.int64)


def ns_to_utc(values_ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(values_ns, unit="ns", utc=True))


def handle_minutes(entity_type: pd.Series | np.ndarray, handle: HandleTimeConfig) -> np.ndarray:
    """Investigator minutes per case, looked up by entity type (vectorised)."""
    types = np.asarray(entity_type, dtype=object)
    minutes = np.full(types.shape, np.nan)
    for name, value in handle.as_dict().items():
        minutes[types == name] = value
    if np.isnan(minutes).any():
        unknown = sorted({str(t) for t in types[np.isnan(minutes)]})
        raise ValueError(f"unknown entity_type values {unknown}; expected {ENTITIES.names()}")
    return minutes


def upsert_cases(queue: pd.DataFrame, incoming: pd.DataFrame) -> pd.DataFrame:
    """Merge freshly scored cases into an open queue.

    A case already in the queue keeps its ``enqueued_at`` (its SLA clock does not restart) but takes
    every other column, including the new ``probability``/``exposure``, from ``incoming``; new cases
    are appended with their own ``enqueued_at``. If ``incoming`` repeats a case id, the last row wins.
    """
    require_columns(incoming, CASE_COLUMNS, "incoming")
    incoming = incoming.drop_duplicates("case_id", keep="last")
    if queue.empty:
        return incoming.reset_index(drop=True)
    kept_enqueued = queue.set_index("case_id")["enqueued_at"]
    merged = incoming.copy()
    known = merged["case_id"].isin(kept_enqueued.index)
    merged.loc[known, "enqueued_at"] = merged.loc[known, "case_id"].map(kept_enqueued)
    untouched = queue.loc[~queue["case_id"].isin(merged["case_id"])]
    return pd.concat([untouched, merged], ignore_index=True)
