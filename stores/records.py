"""Value types shared by the stores: what a score record is, time windows, and their encodings."""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from stores.schema import ID_LENGTH, NAME_LENGTH, VERSION_LENGTH
from triage.entities import check_entity_type

# Strings used for non-finite floats inside the JSON feature vector. NaN (LightGBM's "missing") becomes
# null; infinities are kept exactly as strings because JSON (and PostgreSQL's json type) has no literal.
POSITIVE_INFINITY = "inf"
NEGATIVE_INFINITY = "-inf"

FeatureValue = float | str | None
# What callers may pass as a feature vector; the record always holds a tuple of Python floats.
FeatureVector = Sequence[float] | npt.NDArray[Any]


# JSON Schema patterns (ECMA-262) documenting text rules the validators enforce, for the API's OpenAPI document.
NO_NUL_PATTERN = "^[^\\u0000]*$"
# Rust's (pydantic's) `strip_whitespace` removes Unicode White_Space: after stripping something must remain.
_WHITE_SPACE = "\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
STRIPPED_NOT_EMPTY_PATTERN = f"^[^\\u0000]*[^\\u0000{_WHITE_SPACE}][^\\u0000]*$"
_RFC3339_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]")


def rfc3339_text(value: Any) -> Any:
    """For a pydantic ``BeforeValidator`` on a time: RFC 3339 text (``2026-04-20T10:15:00Z``), or a ``datetime``
    from Python callers. Pydantic alone also reads a number, or a string of digits, as seconds (or milliseconds)
    since 1970, and a space for the ``T``: none of those is the documented format."""
    if value is None or isinstance(value, datetime) or (isinstance(value, str) and _RFC3339_START.match(value)):
        return value
    raise ValueError("must be an RFC 3339 date-time with a time zone, e.g. 2026-04-20T10:15:00Z")


class ModelAlias(StrEnum):
    CHAMPION = "champion"
    CHALLENGER = "challenger"


def utc_now() -> datetime:
    return datetime.now(UTC)


def require_aware_utc(value: datetime, name: str) -> datetime:
    """Return ``value`` in UTC; reject naive datetimes because their zone is a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")
    return value.astimezone(UTC)


def require_text(value: str, name: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > max_length:
        raise ValueError(f"{name} must be at most {max_length} characters, got {len(value)}")
    return value


def require_finite(value: float, name: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Half-open interval ``[start, end)`` of aware datetimes."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", require_aware_utc(self.start, "start"))
        object.__setattr__(self, "end", require_aware_utc(self.end, "end"))
        if self.end <= self.start:
            raise ValueError(f"window end {self.end.isoformat()} must be after start {self.start.isoformat()}")

    @classmethod
    def last(cls, duration: timedelta, now: datetime | None = None) -> TimeWindow:
        end = now if now is not None else utc_now()
        return cls(start=end - duration, end=end)


def encode_feature_vector(values: FeatureVector) -> list[FeatureValue]:
    encoded: list[FeatureValue] = []
    for value in values:
        if math.isnan(value):
            encoded.append(None)
        elif math.isinf(value):
            encoded.append(POSITIVE_INFINITY if value > 0 else NEGATIVE_INFINITY)
        else:
            encoded.append(value)
    return encoded


# One C encoder for every vector: `json.dumps` with non-default options builds a new encoder per call.
_VECTOR_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=True).encode


def encode_feature_json(values: FeatureVector) -> str:
    """The JSON text of ``encode_feature_vector(values)``, encoded in C: Python's encoder writes non-finite
    floats as the bare tokens NaN / Infinity / -Infinity, which no finite float's text contains, so only
    vectors holding one need the textual substitution."""
    text: str = _VECTOR_JSON(values.tolist() if isinstance(values, np.ndarray) else values)
    if "N" in text or "I" in text:
        text = (text.replace("NaN", "null").replace("-Infinity", f'"{NEGATIVE_INFINITY}"')
                .replace("Infinity", f'"{POSITIVE_INFINITY}"'))
    return text


def decode_feature_vector(values: Sequence[FeatureValue]) -> tuple[float, ...]:
    decoded: list[float] = []
    for value in values:
        if value is None:
            decoded.append(math.nan)
        elif value == POSITIVE_INFINITY:
            decoded.append(math.inf)
        elif value == NEGATIVE_INFINITY:
            decoded.append(-math.inf)
        elif isinstance(value, str):
            raise ValueError(f"unexpected string {value!r} in a stored feature vector")
        else:
            decoded.append(float(value))
    return tuple(decoded)


def new_score_id() -> str:
    return new_score_ids(1)[0]


def new_score_ids(count: int) -> list[str]:
    """``count`` time-ordered ids: UUID version 7 (RFC 9562) as 32 hex digits, from one clock reading and one
    ``os.urandom`` call. The leading milliseconds make inserts land at the end of the primary-key index
    instead of at random pages, which is what limits two workers writing one SQLite file (benchmarks/README.md,
    "Scoring log writes")."""
    if count <= 0:
        return []
    raw = np.frombuffer(os.urandom(16 * count), dtype=np.uint8).reshape(count, 16).copy()
    milliseconds = time.time_ns() // 1_000_000
    raw[:, :6] = np.frombuffer(milliseconds.to_bytes(8, "big")[2:], dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70  # version 7
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 9562 variant
    text = raw.tobytes().hex()
    return [text[32 * i:32 * (i + 1)] for i in range(count)]


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    """One model output for one entity, as served (or shadow-scored) by the service.

    Validated on construction so that a bad record fails in the caller, not later in the writer thread.
    ``id`` is generated client-side so that retries and spool replays are idempotent.
    """

    scored_at: datetime
    entity_type: str
    entity_id: str
    model_name: str
    model_version: str
    model_alias: ModelAlias
    served: bool
    probability: float
    score: float
    tier: str
    expected_loss: float
    feature_vector: FeatureVector
    feature_names_hash: str
    request_id: str | None = None
    exposure: float | None = None
    """Loss if a violation and nobody acts, as estimated when scored; None on rows logged before the store
    kept it (read `exposure_estimate`)."""
    id: str = field(default_factory=new_score_id)

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "scored_at", require_aware_utc(self.scored_at, "scored_at"))
        set_field(self, "entity_type", check_entity_type(self.entity_type))
        set_field(self, "model_alias", ModelAlias(self.model_alias))
        require_text(self.entity_id, "entity_id", ID_LENGTH)
        require_text(self.model_name, "model_name", NAME_LENGTH)
        require_text(self.model_version, "model_version", VERSION_LENGTH)
        require_text(self.tier, "tier", NAME_LENGTH)
        require_text(self.feature_names_hash, "feature_names_hash", NAME_LENGTH)
        require_text(self.id, "id", ID_LENGTH)
        if self.request_id is not None:
            require_text(self.request_id, "request_id", ID_LENGTH)
        if not isinstance(self.served, bool | np.bool_):
            raise ValueError(f"served must be a bool, got {self.served!r}")
        set_field(self, "served", bool(self.served))
        probability = require_finite(self.probability, "probability")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        set_field(self, "probability", probability)
        set_field(self, "score", require_finite(self.score, "score"))
        set_field(self, "expected_loss", require_finite(self.expected_loss, "expected_loss"))
        if self.exposure is not None:
            set_field(self, "exposure", require_finite(self.exposure, "exposure"))
        # Copy into an immutable tuple of Python floats so a caller mutating its array later cannot
        # change what gets stored.
        vector = np.asarray(self.feature_vector, dtype=np.float64)
        if vector.ndim != 1:
            raise ValueError(f"feature_vector must be one-dimensional, got shape {vector.shape}")
        set_field(self, "feature_vector", tuple(vector.tolist()))

    @classmethod
    def from_columns(
        cls,
        *,
        scored_at: datetime,
        entity_type: str,
        model_name: str,
        model_version: str,
        model_alias: ModelAlias | str,
        served: bool,
        feature_names_hash: str,
        request_id: str | None,
        entity_ids: Sequence[str],
        probability: npt.ArrayLike,
        score: npt.ArrayLike,
        tier: Sequence[str],
        expected_loss: npt.ArrayLike,
        features: npt.ArrayLike,
        exposure: npt.ArrayLike | None = None,
    ) -> list[ScoreRecord]:
        """The records of one model call, one per row of the columns: the same rules as the constructor,
        checked once per column instead of once per field of every record (several times cheaper for a
        1,000-row call: benchmarks/README.md, "Scoring log writes").
        Raises ``ValueError`` naming the column and the first offending row."""
        entity_ids = list(entity_ids)
        tiers = list(tier)
        n = len(entity_ids)
        matrix = np.asarray(features, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] != n:
            raise ValueError(f"features must have one row per entity ({n}), got shape {matrix.shape}")
        # Checked on Python lists (needed for the records anyway) with C-level map/min/max: as cheap as numpy
        # for 1,000 rows, and no fixed numpy cost on the one-record requests that are most of the traffic.
        named = [("probability", probability), ("score", score), ("expected_loss", expected_loss)]
        if exposure is not None:
            named.append(("exposure", exposure))
        numbers = {name: np.asarray(values, dtype=np.float64).reshape(-1).tolist() for name, values in named}
        for name, values in numbers.items():
            if len(values) != n:
                raise ValueError(f"{name} has {len(values)} values for {n} entities")
            if not all(map(math.isfinite, values)):
                row = next(i for i, v in enumerate(values) if not math.isfinite(v))
                raise ValueError(f"{name} must be finite, got {values[row]} at row {row}")
        probabilities = numbers["probability"]
        if n and (min(probabilities) < 0.0 or max(probabilities) > 1.0):
            row = next(i for i, v in enumerate(probabilities) if not 0.0 <= v <= 1.0)
            raise ValueError(f"probability must be in [0, 1], got {probabilities[row]} at row {row}")
        if len(tiers) != n:
            raise ValueError(f"tier has {len(tiers)} values for {n} entities")
        for value in set(tiers):
            require_text(value, "tier", NAME_LENGTH)
        for row, entity_id in enumerate(entity_ids):
            try:
                require_text(entity_id, "entity_id", ID_LENGTH)
            except ValueError as error:
                raise ValueError(f"{error} (row {row})") from None
        if n == 0:
            return []
        # The fields every row shares are validated by building the first record the ordinary way.
        ids = new_score_ids(n)
        scores, losses = numbers["score"], numbers["expected_loss"]
        exposures: list[float | None] = list(numbers["exposure"]) if exposure is not None else [None] * n
        vectors = matrix.tolist()  # Python floats: later changes to the caller's array are not stored
        first = cls(scored_at=scored_at, entity_type=check_entity_type(entity_type), entity_id=entity_ids[0],
                    model_name=model_name, model_version=model_version, model_alias=ModelAlias(model_alias),
                    served=served, probability=probabilities[0], score=scores[0], tier=tiers[0],
                    expected_loss=losses[0], feature_vector=vectors[0], feature_names_hash=feature_names_hash,
                    request_id=request_id, exposure=exposures[0], id=ids[0])
        shared = {name: getattr(first, name) for name in (
            "scored_at", "entity_type", "model_name", "model_version", "model_alias", "served",
            "feature_names_hash", "request_id")}
        records = [first]
        new, set_field = object.__new__, object.__setattr__
        for i in range(1, n):
            record = new(cls)
            for name, value in shared.items():
                set_field(record, name, value)
            set_field(record, "entity_id", entity_ids[i])
            set_field(record, "probability", probabilities[i])
            set_field(record, "score", scores[i])
            set_field(record, "tier", tiers[i])
            set_field(record, "expected_loss", losses[i])
            set_field(record, "exposure", exposures[i])
            set_field(record, "feature_vector", tuple(vectors[i]))
            set_field(record, "id", ids[i])
            records.append(record)
        return records

    @property
    def exposure_estimate(self) -> float:
        """The exposure this score was computed with: stored on every row logged since migration 0002; for
        older rows recovered from probability and expected loss (exposure does not depend on the model), and 0
        when the probability was 0 (nothing to recover; such a row was never worth a review)."""
        if self.exposure is not None:
            return self.exposure
        return recovered_exposure(self.probability, self.expected_loss)

    def to_row(self) -> dict[str, Any]:
        """Column values for the ``scores`` table."""
        return {
            "id": self.id,
            "scored_at": self.scored_at,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_alias": self.model_alias.value,
            "served": self.served,
            "probability": self.probability,
            "score": self.score,
            "tier": self.tier,
            "expected_loss": self.expected_loss,
            "exposure": self.exposure,
            "feature_vector": encode_feature_vector(self.feature_vector),
            "feature_names_hash": self.feature_names_hash,
            "request_id": self.request_id,
        }

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ScoreRecord:
        return cls(
            id=row["id"],
            scored_at=row["scored_at"],
            entity_type=check_entity_type(row["entity_type"]),
            entity_id=row["entity_id"],
            model_name=row["model_name"],
            model_version=row["model_version"],
            model_alias=ModelAlias(row["model_alias"]),
            served=bool(row["served"]),
            probability=row["probability"],
            score=row["score"],
            tier=row["tier"],
            expected_loss=row["expected_loss"],
            exposure=row.get("exposure"),
            feature_vector=decode_feature_vector(row["feature_vector"]),
            feature_names_hash=row["feature_names_hash"],
            request_id=row["request_id"],
        )

    def to_json_line(self) -> str:
        """One spool line; ``allow_nan=False`` because the encoded vector must already be JSON-clean."""
        row = self.to_row()
        row["scored_at"] = self.scored_at.isoformat()
        return json.dumps(row, allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_json_line(cls, line: str) -> ScoreRecord:
        row = json.loads(line)
        row["scored_at"] = datetime.fromisoformat(row["scored_at"])
        return cls.from_row(row)


def recovered_exposure(probability: float, expected_loss: float) -> float:
    """Exposure of a logged score that did not store it: expected loss ÷ probability (0 when p = 0)."""
    return expected_loss / probability if probability > 0 else 0.0


def exposure_estimates(records: Sequence[ScoreRecord]) -> npt.NDArray[np.float64]:
    return np.array([r.exposure_estimate for r in records], dtype=np.float64)


def feature_array(records: Sequence[ScoreRecord]) -> npt.NDArray[np.float64]:
    """Stack equal-length feature vectors into a 2-D array (rows follow ``records``)."""
    if not records:
        return np.empty((0, 0), dtype=np.float64)
    lengths = {len(record.feature_vector) for record in records}
    if len(lengths) > 1:
        hashes = sorted({record.feature_names_hash for record in records})
        raise ValueError(
            f"feature vectors have different lengths {sorted(lengths)} (feature_names_hash {hashes}); "
            "filter by feature_names_hash"
        )
    return np.array([record.feature_vector for record in records], dtype=np.float64)
