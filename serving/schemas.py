"""The HTTP contract. Record models are generated from the raw-field declarations in `features/`, so the
API validates exactly the fields the features read, with the same limits and descriptions."""

from __future__ import annotations

import math
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from features import FeatureSet, FieldKind, RawField, feature_set_for
from stores.records import NO_NUL_PATTERN, rfc3339_text
from triage.entities import ENTITIES

MAX_RECORDS_PER_REQUEST = 1000
"""Most records one scoring request may carry; send larger sets in several requests."""
MAX_TOP_REASONS = 20


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _clean_text(value: str | None) -> str | None:
    # NUL cannot be stored in PostgreSQL text; an id of only spaces or control characters identifies nothing
    if value is None:
        return value
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# C0 control characters (below U+0020), searched in C: a per-character loop cost ~4 % of a 1,000-record request
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f]")
# `_clean_id` as a JSON Schema pattern: no C0 control character, and one that is not a space, U+0085 or U+00A0
ID_PATTERN = "^[^\\u0000-\\u001f]*[^\\u0000-\\u0020\\u0085\\u00a0][^\\u0000-\\u001f]*$"


def _clean_id(value: str | None) -> str | None:
    value = _clean_text(value)
    if value is not None and not value.strip(" \t\r\n\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"):
        raise ValueError("must contain visible characters")
    if value is not None and _CONTROL_CHARACTER.search(value):
        raise ValueError("must not contain control characters")
    return value


def whole_number(value: Any) -> Any:
    """For a ``BeforeValidator`` on a strict ``int`` (after its ``Field``, or the JSON schema loses the limits):
    an integer as JSON Schema means it. JSON has one number type, so 191.0 is the integer 191; 1.5, true and "12"
    are left to the strict check, which refuses them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("must include a time zone, e.g. 2026-04-20T10:15:00Z")
    return value


def _field_type(raw: RawField) -> Any:
    constraints: dict[str, Any] = {"description": raw.description}
    if raw.example is not None:
        constraints["examples"] = [raw.example]
    if raw.kind in (FieldKind.NUMBER, FieldKind.INTEGER):
        base: Any = float if raw.kind is FieldKind.NUMBER else int
        # strict: `true` is not the number 1, and "12" is not a number either
        constraints.update({k: v for k, v in (("ge", raw.ge), ("le", raw.le)) if v is not None}, strict=True)
        annotated: Any = Annotated[base, Field(**constraints), AfterValidator(_finite)] if base is float else (
            Annotated[base, Field(**constraints), BeforeValidator(whole_number)]
        )
    elif raw.kind is FieldKind.TIME:
        annotated = Annotated[datetime, BeforeValidator(rfc3339_text), Field(**constraints), AfterValidator(_aware)]
    else:
        min_length = 1 if raw.required else 0
        check = _clean_id if raw.kind is FieldKind.ID else _clean_text
        # the pattern documents the check in the OpenAPI document; the check is what validates (clearer errors)
        constraints["json_schema_extra"] = {"pattern": ID_PATTERN if raw.kind is FieldKind.ID else NO_NUL_PATTERN}
        annotated = Annotated[str, Field(min_length=min_length, max_length=raw.max_length, **constraints),
                              AfterValidator(check)]
    if raw.required:
        return (annotated, ...)
    return (annotated | None, None)


def record_model(feature_set: FeatureSet, name: str) -> type[BaseModel]:
    """The request model of one record: every raw field the features read, except `computed` ones, which the
    service fills in (e.g. link-graph signals) and never accepts from callers."""
    fields = {raw.name: _field_type(raw) for raw in feature_set.inputs if not raw.computed}
    return create_model(
        name,
        __config__=ConfigDict(extra="forbid", str_strip_whitespace=False),
        __doc__=f"A {feature_set.entity} record as the queue system sends it (docs/data-contract.md).",
        **fields,
    )


def _class_name(entity: str, suffix: str) -> str:
    return "".join(part.capitalize() for part in entity.split("_")) + suffix


RECORD_MODELS: dict[str, type[BaseModel]] = {
    entity: record_model(feature_set_for(entity), _class_name(entity, "Record")) for entity in ENTITIES.scored_names()
}
"""The request model of each scored entity type, generated from its field declarations (e.g. `ListingRecord`)."""


def score_route(entity: str) -> str:
    """The scoring endpoint of an entity type: `/score_<plural>` (e.g. `/score_listings`)."""
    return f"/score_{ENTITIES.scored(entity).plural}"


class ReasonsMode(StrEnum):
    """Which results carry reasons. Reasons cost more than the prediction (path attribution, the default, a
    fraction of a millisecond a row; exact TreeSHAP milliseconds), so by default only the cases that enter the
    review queue (tiers P0–P2) get them."""

    QUEUED = "queued"
    ALL = "all"
    NONE = "none"


class Reason(BaseModel):
    feature: str
    value: float | str | None
    contribution: float = Field(description="Signed effect on the model's log-odds; positive raises risk")
    text: str = Field(description="What a reviewer reads")


class ScoredEntity(BaseModel):
    entity_id: str
    entity_type: str
    probability: float = Field(description="Calibrated probability of a violation")
    score: float = Field(description="probability × 100, one decimal")
    tier: str = Field(description="P0 (act first) … P3 (no review), from the model's decision thresholds")
    exposure: float = Field(description="Estimated loss if this is a violation and nobody acts")
    expected_loss: float = Field(description="probability × exposure: the loss a review can prevent")
    reasons: list[Reason] | None = Field(None, description="Top reasons; null when not computed (see `reasons`)")


class ModelRef(BaseModel):
    name: str
    version: str
    alias: str | None
    reasons_attribution: Literal["path", "treeshap"] = Field(
        description="How the reasons were attributed: path (fast, approximate) or treeshap (exact); docs/api.md")


class ScoreResponse(BaseModel):
    model: ModelRef
    results: list[ScoredEntity]


# -- queue, case view, prioritisation ------------------------------------------------------------------
class Member(BaseModel):
    entity_id: str
    probability: float
    score: float
    tier: str


class Case(BaseModel):
    case_id: str = Field(description="`<entity_type>:<entity_id>`, or `group:<group_id>` for a group case")
    entity_type: str
    entity_id: str
    position: int = Field(description="1 = review first")
    tier: str = Field(description="Queue tier from the queue policy (SLA hours per tier)")
    priority: float = Field(description="Expected loss × SLA urgency boost: the sort key")
    probability: float
    score: float
    expected_loss: float
    enqueued_at: datetime
    sla_due_at: datetime
    hours_to_due: float
    risk_type: str | None = Field(description="Likely risk type: that of the strongest reason")
    position_reason: str
    top_reasons: list[Reason]
    members: list[Member] | None = None
    model_name: str
    model_version: str


class FeatureValue(BaseModel):
    name: str
    description: str
    value: float | str | None


class CaseDetail(Case):
    reasons: list[Reason] = Field(description="Every feature's signed contribution, by |contribution|")
    features: list[FeatureValue] = Field(description="The entity's record as the model saw it")


class QueueResponse(BaseModel):
    generated_at: datetime
    cases: list[Case]


EnqueuedAt = Annotated[datetime | None, BeforeValidator(rfc3339_text),
                      Field(description="When the case entered the queue (default: now)")]


def _queued_model(entity: str) -> type[BaseModel]:
    return create_model(
        _class_name(entity, "Queued"),
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"A {entity} case to prioritise: its record and when it entered the queue.",
        record=(RECORD_MODELS[entity], ...),
        enqueued_at=(EnqueuedAt, None),
    )


QUEUED_MODELS: dict[str, type[BaseModel]] = {entity: _queued_model(entity) for entity in ENTITIES.scored_names()}
"""Per scored entity type, one case sent to `/prioritize` (e.g. `QueuedListing`: record + enqueued_at)."""


class PrioritizeResponse(BaseModel):
    generated_at: datetime
    model_versions: dict[str, str]
    cases: list[Case]
