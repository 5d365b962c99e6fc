"""Reviewer decisions: validated, idempotent, durable on return; joined point-in-time to scores."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy.engine import Engine

from stores.engine import sqlite_synchronous_level
from stores.records import (
    NO_NUL_PATTERN,
    STRIPPED_NOT_EMPTY_PATTERN,
    ScoreRecord,
    TimeWindow,
    rfc3339_text,
    utc_now,
)
from stores.schema import (
    ID_LENGTH,
    NAME_LENGTH,
    NOTE_LENGTH,
    SHORT_TEXT_LENGTH,
    VERSION_LENGTH,
    decisions,
    scores,
)
from triage.entities import EntityName, check_entity_type

# Reviewer clocks and queues are not perfectly in sync; anything further ahead is a client bug.
MAX_DECIDED_AT_SKEW = timedelta(minutes=5)
# Far above any plausible single-case loss; catches cents-vs-units and overflow mistakes.
MAX_LOSS_AMOUNT = 1e12
# SQLite PRAGMA synchronous levels: FULL (2) or EXTRA (3) make a commit survive power loss.
SQLITE_SYNCHRONOUS_FULL = 2

# the patterns document, in the API's schema, the rules `_no_nul` and stripping enforce (they do not validate)
_STRIPPED = Field(json_schema_extra={"pattern": STRIPPED_NOT_EMPTY_PATTERN})
IdText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=ID_LENGTH), _STRIPPED]
NameText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_LENGTH), _STRIPPED]
VersionText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=VERSION_LENGTH), _STRIPPED
]
CodeText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=SHORT_TEXT_LENGTH, pattern=r"^[a-z0-9][a-z0-9_\-]*$"
    ),
]
NoteText = Annotated[
    str, StringConstraints(max_length=NOTE_LENGTH), Field(json_schema_extra={"pattern": NO_NUL_PATTERN})
]


class Outcome(StrEnum):
    VIOLATION = "violation"
    NO_VIOLATION = "no_violation"
    ESCALATE = "escalate"


class Decision(BaseModel):
    """A reviewer's decision on a case, as submitted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_id: IdText
    case_id: IdText
    entity_type: EntityName
    entity_id: IdText
    outcome: Outcome
    risk_type: CodeText | None = None
    enforcement_action: CodeText | None = None
    # strict: `false` is not the amount 0, nor "12" an amount (an int is still a float)
    loss_amount: float = Field(default=0.0, ge=0.0, le=MAX_LOSS_AMOUNT, allow_inf_nan=False, strict=True)
    reviewer_id: IdText
    decided_at: Annotated[AwareDatetime, BeforeValidator(rfc3339_text)]
    model_name: NameText | None = None
    model_version: VersionText | None = None
    note: NoteText | None = None

    @field_validator("decision_id", "case_id", "entity_id", "reviewer_id", "model_name", "model_version", "note")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # PostgreSQL text cannot hold NUL; refuse it here, naming the field, rather than fail in the store
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("decided_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime) -> datetime:
        if value > utc_now() + MAX_DECIDED_AT_SKEW:
            raise ValueError(f"decided_at {value.isoformat()} is in the future")
        return value.astimezone(UTC)


class StoredDecision(Decision):
    """A decision as stored: the submitted content plus when the store first received it."""

    received_at: AwareDatetime


DECISION_CONTENT_FIELDS: tuple[str, ...] = tuple(Decision.model_fields)
DECISION_COLUMN_NAMES: tuple[str, ...] = tuple(column.name for column in decisions.columns)
SCORE_COLUMN_NAMES: tuple[str, ...] = tuple(column.name for column in scores.columns)


class DecisionConflict(ValueError):
    """The decision id is already stored with different content."""

    def __init__(self, stored: StoredDecision, submitted: Decision, fields: tuple[str, ...]) -> None:
        self.decision_id = submitted.decision_id
        self.fields = fields
        self.stored = stored
        self.submitted = submitted
        # values as the API spells them (JSON), never Python reprs such as <Outcome.VIOLATION: 'violation'>
        was, now = stored.model_dump(mode="json"), submitted.model_dump(mode="json")
        differences = "; ".join(f"{name}: stored {_shown(was[name])}, submitted {_shown(now[name])}" for name in fields)
        super().__init__(
            f"decision {_shown(submitted.decision_id)} already recorded with different {', '.join(fields)} "
            f"({differences})"
        )


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class DecisionWithScore:
    """A decision and the score its entity had when it was decided (None if it was never scored before)."""

    decision: StoredDecision
    score: ScoreRecord | None


def differing_fields(stored: Decision, submitted: Decision) -> tuple[str, ...]:
    return tuple(name for name in DECISION_CONTENT_FIELDS if getattr(stored, name) != getattr(submitted, name))


class DecisionStore:
    """Reads and writes the ``decisions`` table."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now) -> None:
        level = sqlite_synchronous_level(engine)
        if level is not None and level < SQLITE_SYNCHRONOUS_FULL:
            raise ValueError(
                "DecisionStore needs SQLite synchronous=FULL so a recorded decision survives power loss; "
                "create the engine with make_engine(url) (the default) or sqlite_synchronous='FULL'"
            )
        self._engine = engine
        self._clock = clock

    def record(self, decision: Decision) -> tuple[StoredDecision, bool]:
        """Store ``decision`` once; returns the stored row and whether this call created it.

        Idempotent on ``decision_id``: the same content again returns the existing row with
        ``created=False``; different content raises ``DecisionConflict`` naming the fields. The insert
        is committed before this returns.
        """
        received_at = self._clock()
        row = _decision_row(decision, received_at)
        try:
            with self._engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # Durable even if the server runs with synchronous_commit=off for other workloads.
                    connection.exec_driver_sql("SET LOCAL synchronous_commit TO on")
                connection.execute(decisions.insert().values(row))
        except sa.exc.IntegrityError:
            # Either the id exists (the idempotent path) or a constraint failed; only the first has a row.
            existing = self.get(decision.decision_id)
            if existing is None:
                raise
            conflicting = differing_fields(existing, decision)
            if conflicting:
                raise DecisionConflict(existing, decision, conflicting) from None
            return existing, False
        return StoredDecision(**decision.model_dump(), received_at=received_at), True

    def get(self, decision_id: str) -> StoredDecision | None:
        query = sa.select(decisions).where(decisions.c.decision_id == decision_id)
        with self._engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return StoredDecision.model_validate(dict(row)) if row is not None else None

    def decisions_in_window(
        self,
        window: TimeWindow,
        *,
        entity_type: str | None = None,
        outcome: Outcome | None = None,
    ) -> list[StoredDecision]:
        """Decisions with ``window.start <= decided_at < window.end``, oldest first."""
        query = (
            sa.select(decisions)
            .where(decisions.c.decided_at >= window.start, decisions.c.decided_at < window.end)
            .order_by(decisions.c.decided_at, decisions.c.decision_id)
        )
        if entity_type is not None:
            query = query.where(decisions.c.entity_type == check_entity_type(entity_type))
        if outcome is not None:
            query = query.where(decisions.c.outcome == Outcome(outcome).value)
        with self._engine.connect() as connection:
            return [StoredDecision.model_validate(dict(row)) for row in connection.execute(query).mappings()]

    def decisions_with_scores(
        self,
        window: TimeWindow,
        *,
        model_name: str | None = None,
        model_version: str | None = None,
        served: bool | None = None,
        match_decision_model: bool = False,
    ) -> list[DecisionWithScore]:
        """Decisions in ``window``, each with the entity's latest score at or before ``decided_at``.

        Point-in-time correct: a score written after the decision is never used, so the feature vector
        is the one the model saw, not one computed with hindsight. Filters narrow the candidate scores:
        ``model_name``/``model_version``/``served`` explicitly, or ``match_decision_model`` to the model
        recorded on each decision (where it has one). Decisions without a candidate score are returned
        with ``score=None``. Ties on ``scored_at`` prefer the served score.
        """
        candidate = scores.alias("candidate")
        conditions: list[sa.ColumnElement[bool]] = [
            candidate.c.entity_type == decisions.c.entity_type,
            candidate.c.entity_id == decisions.c.entity_id,
            candidate.c.scored_at <= decisions.c.decided_at,
        ]
        if model_name is not None:
            conditions.append(candidate.c.model_name == model_name)
        if model_version is not None:
            conditions.append(candidate.c.model_version == model_version)
        if served is not None:
            conditions.append(candidate.c.served == served)
        if match_decision_model:
            conditions.append(
                sa.or_(decisions.c.model_name.is_(None), candidate.c.model_name == decisions.c.model_name)
            )
            conditions.append(
                sa.or_(decisions.c.model_version.is_(None), candidate.c.model_version == decisions.c.model_version)
            )
        matched_score_id = (
            sa.select(candidate.c.id)
            .where(*conditions)
            .order_by(candidate.c.scored_at.desc(), candidate.c.served.desc(), candidate.c.id.desc())
            .limit(1)
            .correlate(decisions)
            .scalar_subquery()
        )
        in_window = (
            sa.select(decisions, matched_score_id.label("matched_score_id"))
            .where(decisions.c.decided_at >= window.start, decisions.c.decided_at < window.end)
            .subquery("in_window")
        )
        score_columns = [column.label(f"score__{column.name}") for column in scores.c]
        query = (
            sa.select(in_window, *score_columns)
            .select_from(in_window.outerjoin(scores, scores.c.id == in_window.c.matched_score_id))
            .order_by(in_window.c.decided_at, in_window.c.decision_id)
        )
        results: list[DecisionWithScore] = []
        with self._engine.connect() as connection:
            for row in connection.execute(query).mappings():
                decision = StoredDecision.model_validate({name: row[name] for name in DECISION_COLUMN_NAMES})
                score = None
                if row["matched_score_id"] is not None:
                    score = ScoreRecord.from_row({name: row[f"score__{name}"] for name in SCORE_COLUMN_NAMES})
                results.append(DecisionWithScore(decision=decision, score=score))
        return results


def _decision_row(decision: Decision, received_at: datetime) -> dict[str, Any]:
    # Enum members are bound by value explicitly: drivers differ in how they adapt Enum subclasses.
    row = decision.model_dump()
    row["entity_type"] = decision.entity_type
    row["outcome"] = decision.outcome.value
    row["received_at"] = received_at
    return row
