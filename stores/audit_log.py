"""Audit log: who did what to which target (model, alias, threshold, ...), when, with structured detail."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from stores.records import TimeWindow, require_aware_utc, require_text, utc_now
from stores.schema import ID_LENGTH, NAME_LENGTH, SHORT_TEXT_LENGTH, VERSION_LENGTH, audit_log

DEFAULT_QUERY_LIMIT = 1_000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    model_version: str | None
    detail: dict[str, Any]

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> AuditEntry:
        return cls(
            id=int(row["id"]),
            at=row["at"],
            actor=row["actor"],
            action=row["action"],
            target=row["target"],
            model_version=row["model_version"],
            detail=dict(row["detail"]),
        )


def normalise_detail(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON round trip: rejects NaN/infinity and non-JSON values now rather than in the database,
    and makes the returned entry equal to what a later query returns (tuples become lists, ...)."""
    if detail is None:
        return {}
    try:
        encoded = json.dumps(dict(detail), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"detail must be JSON-serialisable with finite numbers: {error}") from error
    decoded: dict[str, Any] = json.loads(encoded)
    return decoded


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """An entry not yet written: what happened and when (the time of the action, not of the write)."""

    at: datetime
    actor: str
    action: str
    target: str
    model_version: str | None = None
    detail: Mapping[str, Any] | None = None


class AuditLog:
    """Append-only audit entries."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    def record(
        self,
        actor: str,
        action: str,
        target: str,
        *,
        model_version: str | None = None,
        detail: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        values = self._values(AuditDraft(at if at is not None else self._clock(), actor, action, target,
                                         model_version, detail))
        with self._engine.begin() as connection:
            result = connection.execute(audit_log.insert().values(values))
            entry_id = result.inserted_primary_key[0] if result.inserted_primary_key is not None else None
        if entry_id is None:
            raise RuntimeError("the database did not report the new audit entry's id")
        return AuditEntry(id=int(entry_id), **values)

    def record_many(self, drafts: Sequence[AuditDraft]) -> int:
        """Write several entries in one transaction (one commit instead of one per entry: what lets a
        busy service audit every request). All are validated first, so a bad draft writes none."""
        rows = [self._values(d) for d in drafts]
        if rows:
            with self._engine.begin() as connection:
                connection.execute(audit_log.insert(), rows)
        return len(rows)

    @staticmethod
    def _values(draft: AuditDraft) -> dict[str, Any]:
        return {
            "at": require_aware_utc(draft.at, "at"),
            "actor": require_text(draft.actor, "actor", ID_LENGTH),
            "action": require_text(draft.action, "action", SHORT_TEXT_LENGTH),
            "target": require_text(draft.target, "target", NAME_LENGTH),
            "model_version": None
            if draft.model_version is None
            else require_text(draft.model_version, "model_version", VERSION_LENGTH),
            "detail": normalise_detail(draft.detail),
        }

    def query(
        self,
        *,
        window: TimeWindow | None = None,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        model_version: str | None = None,
        newest_first: bool = True,
        limit: int = DEFAULT_QUERY_LIMIT,
    ) -> list[AuditEntry]:
        query = sa.select(audit_log)
        if window is not None:
            query = query.where(audit_log.c.at >= window.start, audit_log.c.at < window.end)
        for column, value in (
            (audit_log.c.actor, actor),
            (audit_log.c.action, action),
            (audit_log.c.target, target),
            (audit_log.c.model_version, model_version),
        ):
            if value is not None:
                query = query.where(column == value)
        if newest_first:
            query = query.order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
        else:
            query = query.order_by(audit_log.c.at, audit_log.c.id)
        with self._engine.connect() as connection:
            return [AuditEntry.from_row(row) for row in connection.execute(query.limit(limit)).mappings()]
