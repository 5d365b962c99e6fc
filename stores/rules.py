"""Versioned policy rules and the log of their hits.

Rules are append-only versions: saving a changed rule, or changing its mode (shadow -> active -> retired), adds
the next version with who and why. ``rule_heads`` keeps each rule's latest version and mode (updated in the same
transaction), so ``current()`` reads one row per live rule however long the history is. A definition may only
become ``active`` after the same definition has been saved in ``shadow`` (``min_shadow`` before, if set): every
rule, and every change to a rule's condition, action or reason, runs in shadow before it acts.

Rule hits (shadow and active) are written in batches off the request path and counted per rule, version and mode
over a time window through a covering index on ``(hit_at, entity_type, rule_id, version, mode)``: a count reads
the window's index entries only, never the whole history.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from policy.rule_engine import RuleHits
from policy.rulebook import CODE_LENGTH, RULE_ID_LENGTH, Rule, RuleMode
from stores.records import TimeWindow, new_score_id, new_score_ids, require_aware_utc, require_text, utc_now
from stores.schema import (
    ENTITY_TYPES_NAME,
    ID_LENGTH,
    NOTE_LENGTH,
    AutoIncrementId,
    PortableJSON,
    UTCDateTime,
    entity_type_check,
    metadata,
)

MODES = tuple(mode.value for mode in RuleMode)
HIT_MODES = (RuleMode.SHADOW.value, RuleMode.ACTIVE.value)
HASH_LENGTH = 64
# 9 parameters a hit row: 1,000 rows a statement stay far below SQLite's and PostgreSQL's parameter limits.
HIT_ROWS_PER_STATEMENT = 1_000


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


rule_versions = sa.Table(
    "rule_versions",
    metadata,
    sa.Column("id", AutoIncrementId, primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.String(RULE_ID_LENGTH), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("entity_type", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    # Rule.definition(): everything but version and mode
    sa.Column("definition", PortableJSON, nullable=False),
    sa.Column("definition_hash", sa.String(HASH_LENGTH), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(ID_LENGTH), nullable=False),
    sa.Column("note", sa.String(NOTE_LENGTH), nullable=False),
    sa.CheckConstraint(_one_of("mode", MODES), name="mode"),
    sa.CheckConstraint("version >= 1", name="version"),
    sa.CheckConstraint(entity_type_check(), name=ENTITY_TYPES_NAME),
    # history(rule_id) in order, and the guard against two writers creating the same version
    sa.UniqueConstraint("rule_id", "version"),
    # "has this definition run in shadow?" before a version may be active
    sa.Index("ix_rule_versions_definition", "rule_id", "definition_hash", "mode"),
)

rule_heads = sa.Table(
    "rule_heads",
    metadata,
    sa.Column("rule_id", sa.String(RULE_ID_LENGTH), primary_key=True),
    sa.Column("entity_type", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(_one_of("mode", MODES), name="mode"),
    sa.CheckConstraint(entity_type_check(), name=ENTITY_TYPES_NAME),
    # current(entity_type): the live rules of one entity type
    sa.Index("ix_rule_heads_entity_mode", "entity_type", "mode"),
)

rule_hits = sa.Table(
    "rule_hits",
    metadata,
    # time-ordered (UUIDv7) and client-generated: inserts append to the index, a retried batch is stored once
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("hit_at", UTCDateTime(), nullable=False),
    sa.Column("entity_type", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("rule_id", sa.String(RULE_ID_LENGTH), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("entity_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("score_id", sa.String(ID_LENGTH), nullable=True),
    sa.Column("request_id", sa.String(ID_LENGTH), nullable=True),
    sa.CheckConstraint(_one_of("mode", HIT_MODES), name="mode"),
    sa.CheckConstraint(entity_type_check(), name=ENTITY_TYPES_NAME),
    # counts per rule/version/mode over a window, from the index alone
    sa.Index("ix_rule_hits_window", "hit_at", "entity_type", "rule_id", "version", "mode"),
    # one rule's hits over time (its shadow run, before activation)
    sa.Index("ix_rule_hits_rule_time", "rule_id", "hit_at"),
)


class RuleStoreError(ValueError):
    """A change the rule store refuses (named rule, clear reason)."""


class RuleConflict(RuleStoreError):
    """Another writer changed the rule first; reload it and try again."""


@dataclass(frozen=True, slots=True)
class RuleVersion:
    """One stored version: the rule (with its version and mode) and who made it, when and why."""

    rule: Rule
    definition_hash: str
    created_at: datetime
    created_by: str
    note: str

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> RuleVersion:
        rule = Rule.model_validate({**dict(row["definition"]), "version": row["version"], "mode": row["mode"]})
        return cls(rule=rule, definition_hash=row["definition_hash"], created_at=row["created_at"],
                   created_by=row["created_by"], note=row["note"])


@dataclass(frozen=True, slots=True)
class SavedRule:
    rule: Rule
    created: bool  # False: nothing changed, no new version


@dataclass(frozen=True, slots=True)
class RuleHitCount:
    rule_id: str
    version: int
    mode: RuleMode
    hits: int


@dataclass(frozen=True, slots=True)
class RuleHitRow:
    """One rule hit on one entity, as logged. ``id`` is made when the row is, so a retried batch is stored once."""

    hit_at: datetime
    entity_type: str
    entity_id: str
    rule_id: str
    version: int
    mode: RuleMode
    score_id: str | None = None
    request_id: str | None = None
    id: str = field(default_factory=new_score_id)


class RuleStore:
    """Reads and writes ``rule_versions``, ``rule_heads`` and ``rule_hits``."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now,
                 min_shadow: timedelta = timedelta(0)) -> None:
        if min_shadow < timedelta(0):
            raise ValueError("min_shadow must not be negative")
        self._engine = engine
        self._clock = clock
        self._min_shadow = min_shadow

    # --- versions ------------------------------------------------------------------------------------------

    def save(self, rule: Rule, *, created_by: str, note: str = "",
             expected_version: int | None = None) -> SavedRule:
        """Store ``rule`` as the next version (its ``version`` is ignored; the store assigns it).

        Unchanged (same definition and mode as the latest version): no new version, ``created=False``. A new rule
        starts in ``shadow``; ``active`` needs the same definition saved in shadow before (see the module doc).
        ``expected_version``: refuse with ``RuleConflict`` unless the latest version is that one (an editor that
        loaded version N does not overwrite a change made meanwhile).
        """
        require_text(created_by, "created_by", ID_LENGTH)
        if len(note) > NOTE_LENGTH:
            raise ValueError(f"note must be at most {NOTE_LENGTH} characters")
        digest = rule.definition_hash()
        now = require_aware_utc(self._clock(), "clock")
        try:
            with self._engine.begin() as connection:
                head = self._lock_head(connection, rule.rule_id)
                if expected_version is not None and (head["version"] if head else 0) != expected_version:
                    found = head["version"] if head else "none"
                    raise RuleConflict(f"rule {rule.rule_id!r} is at version {found}, not {expected_version}")
                if head is None:
                    if rule.mode is not RuleMode.SHADOW:
                        raise RuleStoreError(f"rule {rule.rule_id!r} is new: it must be saved in shadow first, "
                                             f"not {rule.mode.value}")
                    version = 1
                else:
                    if head["entity_type"] != rule.entity_type:
                        raise RuleStoreError(f"rule {rule.rule_id!r} belongs to entity type "
                                             f"{head['entity_type']!r}, not {rule.entity_type!r}")
                    latest = self._version_row(connection, rule.rule_id, head["version"])
                    if latest["definition_hash"] == digest and head["mode"] == rule.mode.value:
                        return SavedRule(RuleVersion.from_row(latest).rule, created=False)
                    if rule.mode is RuleMode.ACTIVE:
                        self._require_shadowed(connection, rule.rule_id, digest, now)
                    version = head["version"] + 1
                stored = rule.model_copy(update={"version": version})
                connection.execute(rule_versions.insert().values(
                    rule_id=rule.rule_id, version=version, entity_type=rule.entity_type, mode=rule.mode.value,
                    definition=rule.definition(), definition_hash=digest, created_at=now, created_by=created_by,
                    note=note,
                ))
                if head is None:
                    connection.execute(rule_heads.insert().values(
                        rule_id=rule.rule_id, entity_type=rule.entity_type, version=version, mode=rule.mode.value,
                        updated_at=now))
                else:
                    result = connection.execute(
                        rule_heads.update()
                        .where(rule_heads.c.rule_id == rule.rule_id, rule_heads.c.version == head["version"])
                        .values(version=version, mode=rule.mode.value, updated_at=now))
                    if result.rowcount != 1:
                        raise RuleConflict(f"rule {rule.rule_id!r} was changed by another writer; reload it")
        except sa.exc.IntegrityError as error:
            # two writers created the same rule or version at once; the database kept the first
            raise RuleConflict(f"rule {rule.rule_id!r} was changed by another writer; reload it") from error
        return SavedRule(stored, created=True)

    def set_mode(self, rule_id: str, mode: RuleMode | str, *, changed_by: str, reason: str) -> SavedRule:
        """Record a mode change (shadow -> active -> retired, or back) as a new version with who and why."""
        require_text(reason, "reason", NOTE_LENGTH)
        latest = self.get(rule_id)
        if latest is None:
            raise RuleStoreError(f"no rule {rule_id!r}")
        return self.save(latest.model_copy(update={"mode": RuleMode(mode)}), created_by=changed_by, note=reason,
                         expected_version=latest.version)

    @staticmethod
    def _lock_head(connection: sa.Connection, rule_id: str) -> Mapping[Any, Any] | None:
        # A no-op UPDATE first: a row lock on PostgreSQL (like FOR UPDATE) and SQLite's write lock taken now,
        # so a second writer waits here instead of failing later on a stale read.
        connection.execute(rule_heads.update().where(rule_heads.c.rule_id == rule_id)
                           .values(rule_id=rule_heads.c.rule_id))
        return connection.execute(sa.select(rule_heads).where(rule_heads.c.rule_id == rule_id)).mappings().first()

    @staticmethod
    def _version_row(connection: sa.Connection, rule_id: str, version: int) -> Mapping[Any, Any]:
        return connection.execute(sa.select(rule_versions).where(
            rule_versions.c.rule_id == rule_id, rule_versions.c.version == version)).mappings().one()

    def _require_shadowed(self, connection: sa.Connection, rule_id: str, digest: str, now: datetime) -> None:
        first_shadow = connection.execute(
            sa.select(sa.func.min(rule_versions.c.created_at)).where(
                rule_versions.c.rule_id == rule_id, rule_versions.c.definition_hash == digest,
                rule_versions.c.mode == RuleMode.SHADOW.value)
        ).scalar_one_or_none()
        if first_shadow is None:
            raise RuleStoreError(f"rule {rule_id!r} cannot become active: this definition has not run in shadow; "
                                 "save it in shadow first")
        if now - first_shadow < self._min_shadow:
            raise RuleStoreError(f"rule {rule_id!r} cannot become active before it has run {self._min_shadow} in "
                                 f"shadow (since {first_shadow.isoformat()})")

    def current(self, entity_type: str) -> list[Rule]:
        """The live rules of ``entity_type`` (latest version of each rule, unless retired), by rule id."""
        query = (
            sa.select(rule_versions)
            .join(rule_heads, sa.and_(rule_heads.c.rule_id == rule_versions.c.rule_id,
                                      rule_heads.c.version == rule_versions.c.version))
            .where(rule_heads.c.entity_type == entity_type, rule_heads.c.mode != RuleMode.RETIRED.value)
            .order_by(rule_heads.c.rule_id)
        )
        with self._engine.connect() as connection:
            return [RuleVersion.from_row(row).rule for row in connection.execute(query).mappings()]

    def get(self, rule_id: str, version: int | None = None) -> Rule | None:
        """One version of a rule (the latest by default), or None."""
        query = sa.select(rule_versions).where(rule_versions.c.rule_id == rule_id)
        query = (query.where(rule_versions.c.version == version) if version is not None
                 else query.order_by(rule_versions.c.version.desc()).limit(1))
        with self._engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return RuleVersion.from_row(row).rule if row is not None else None

    def history(self, rule_id: str) -> list[RuleVersion]:
        """Every version of a rule, oldest first."""
        query = sa.select(rule_versions).where(rule_versions.c.rule_id == rule_id).order_by(rule_versions.c.version)
        with self._engine.connect() as connection:
            return [RuleVersion.from_row(row) for row in connection.execute(query).mappings()]

    # --- hits ------------------------------------------------------------------------------------------------

    def record_hits(self, hits: Sequence[RuleHitRow]) -> int:
        """Insert hit rows in one transaction (multi-row statements); returns how many were given."""
        rows = [_hit_values(hit) for hit in hits]
        if not rows:
            return 0
        with self._engine.begin() as connection:
            dialect = connection.dialect.name
            insert: Any = (postgresql.insert(rule_hits) if dialect == "postgresql" else sqlite.insert(rule_hits))
            for start in range(0, len(rows), HIT_ROWS_PER_STATEMENT):
                chunk = rows[start:start + HIT_ROWS_PER_STATEMENT]
                connection.execute(insert.values(chunk).on_conflict_do_nothing(index_elements=["id"]))
        return len(rows)

    def hit_counts(self, window: TimeWindow, *, entity_type: str | None = None,
                   rule_id: str | None = None) -> list[RuleHitCount]:
        """Hits per rule, version and mode with ``window.start <= hit_at < window.end``."""
        query = hit_count_query(window, entity_type=entity_type, rule_id=rule_id)
        with self._engine.connect() as connection:
            return [RuleHitCount(rule_id=r.rule_id, version=int(r.version), mode=RuleMode(r.mode), hits=int(r.hits))
                    for r in connection.execute(query)]


def hit_count_query(window: TimeWindow, *, entity_type: str | None = None,
                    rule_id: str | None = None) -> sa.Select[Any]:
    """The count behind ``RuleStore.hit_counts`` (a range of ``ix_rule_hits_window``; tests read its plan)."""
    query = (
        sa.select(rule_hits.c.rule_id, rule_hits.c.version, rule_hits.c.mode, sa.func.count().label("hits"))
        .where(rule_hits.c.hit_at >= window.start, rule_hits.c.hit_at < window.end)
        .group_by(rule_hits.c.rule_id, rule_hits.c.version, rule_hits.c.mode)
        .order_by(rule_hits.c.rule_id, rule_hits.c.version, rule_hits.c.mode)
    )
    if entity_type is not None:
        query = query.where(rule_hits.c.entity_type == entity_type)
    if rule_id is not None:
        query = query.where(rule_hits.c.rule_id == rule_id)
    return query


def _hit_values(hit: RuleHitRow) -> dict[str, Any]:
    mode = RuleMode(hit.mode)
    if mode is RuleMode.RETIRED:
        raise ValueError(f"rule {hit.rule_id!r}: a retired rule cannot hit")
    return {
        "id": require_text(hit.id, "id", ID_LENGTH),
        "hit_at": require_aware_utc(hit.hit_at, "hit_at"),
        "entity_type": require_text(hit.entity_type, "entity_type", CODE_LENGTH),
        "entity_id": require_text(hit.entity_id, "entity_id", ID_LENGTH),
        "rule_id": require_text(hit.rule_id, "rule_id", RULE_ID_LENGTH),
        "version": int(hit.version),
        "mode": mode.value,
        "score_id": None if hit.score_id is None else require_text(hit.score_id, "score_id", ID_LENGTH),
        "request_id": None if hit.request_id is None else require_text(hit.request_id, "request_id", ID_LENGTH),
    }


def hit_rows(
    hits: RuleHits,
    *,
    entity_type: str,
    entity_ids: Sequence[str] | npt.NDArray[np.object_],
    hit_at: datetime,
    score_ids: Sequence[str | None] | None = None,
    request_id: str | None = None,
) -> list[RuleHitRow]:
    """The log rows of one evaluation: one per (row, rule) hit, shadow and active alike."""
    if len(entity_ids) != hits.n_rows:
        raise ValueError(f"entity_ids has {len(entity_ids)} values for {hits.n_rows} rows")
    if score_ids is not None and len(score_ids) != hits.n_rows:
        raise ValueError(f"score_ids has {len(score_ids)} values for {hits.n_rows} rows")
    found = list(hits.hits())
    return [
        RuleHitRow(hit_at=hit_at, entity_type=entity_type, entity_id=str(entity_ids[hit.row]), rule_id=hit.rule_id,
                   version=hit.version, mode=hit.mode,
                   score_id=None if score_ids is None else score_ids[hit.row], request_id=request_id, id=hit_id)
        for hit, hit_id in zip(found, new_score_ids(len(found)), strict=True)
    ]
