"""Transactional outbox: events that must reach the marketplace, written in the transaction that causes them.

``Outbox.enqueue(connection, topic, key, payload)`` inserts the event, and one pending delivery per subscriber
whose topic patterns match, on the caller's open connection: the event exists if and only if the state change
that caused it (a case held, a decision recorded) was committed. Event ids are time-ordered (UUIDv7).

Delivery state is kept per subscriber (``outbox_deliveries``), so each subscriber gets every event at least once,
independently of the others. A dispatcher (``delivery.Dispatcher``) claims due deliveries with a lease:

- ``claim_due(subscriber, limit, lease_seconds)``: one ``UPDATE ... WHERE id IN (SELECT ... LIMIT n)``; on
  PostgreSQL the inner select takes row locks with ``FOR UPDATE SKIP LOCKED``, so several processes claim
  disjoint rows without waiting on each other; SQLite has one writer, and the single statement runs under its
  write lock. Claiming pushes ``next_attempt_at`` to the end of the lease, counts the attempt and sets a fresh
  ``claim_token``: a dispatcher that dies mid-delivery loses nothing (the lease runs out and the delivery is due
  again), and one whose lease ran out cannot overwrite the outcome of the process that re-claimed it.
- ``mark_delivered``, ``mark_failed(error, next_attempt_at)``; a failure at the subscriber's ``max_attempts``
  dead-letters the delivery (kept for an operator: ``dead``, ``retry_dead``).

Claiming reads a partial index over pending deliveries only (``status = 'pending'``), so it costs the same with
1k or 10M delivered events; ``purge`` removes delivered events past a retention time.
"""

from __future__ import annotations

import fnmatch
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

from stores.records import new_score_ids, require_aware_utc, require_text, utc_now
from stores.schema import ID_LENGTH, NAME_LENGTH, NOTE_LENGTH, AutoIncrementId, PortableJSON, UTCDateTime, metadata
from triage.entities import EntityName

TOPIC_LENGTH = 128
EVENT_ID_LENGTH = 32
TOKEN_LENGTH = 32
# A payload is a small JSON document (what to do to which listing), never a data dump: larger is a bug.
MAX_PAYLOAD_BYTES = 64 * 1024
_TOPIC = re.compile(r"^[a-z0-9_]+(?:\.[a-z0-9_]+)*$")
_TOPIC_PATTERN = re.compile(r"^(?:\*|[a-z0-9_*]+(?:\.[a-z0-9_*]+)*)$")


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


# literals, not bound parameters, so the planner can prove the partial indexes' predicates
_PENDING: sa.ColumnElement[str] = sa.literal_column("'pending'")
_DEAD: sa.ColumnElement[str] = sa.literal_column("'dead'")

outbox_events = sa.Table(
    "outbox_events",
    metadata,
    sa.Column("event_id", sa.String(EVENT_ID_LENGTH), primary_key=True),
    sa.Column("topic", sa.String(TOPIC_LENGTH), nullable=False),
    sa.Column("key", sa.String(ID_LENGTH), nullable=False),
    sa.Column("payload", PortableJSON, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # retention: purge() walks the oldest events
    sa.Index("ix_outbox_events_created_at", "created_at"),
)

outbox_deliveries = sa.Table(
    "outbox_deliveries",
    metadata,
    sa.Column("id", AutoIncrementId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(EVENT_ID_LENGTH),
              sa.ForeignKey(outbox_events.c.event_id, name="fk_outbox_deliveries_event_id"), nullable=False),
    sa.Column("subscriber", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # attempts made so far (counted when an attempt is claimed, so a crash mid-delivery counts too)
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("claim_token", sa.String(TOKEN_LENGTH), nullable=True),
    sa.Column("last_error", sa.String(NOTE_LENGTH), nullable=True),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status"),
    sa.CheckConstraint("attempts >= 0", name="attempts"),
    sa.UniqueConstraint("event_id", "subscriber"),
    # claim_due and backlog: pending rows only, however many have been delivered
    sa.Index("ix_outbox_deliveries_due", "subscriber", "next_attempt_at", "id", "attempts",
             sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'")),
    # the dead letters of one subscriber
    sa.Index("ix_outbox_deliveries_dead", "subscriber", "id",
             sqlite_where=sa.text("status = 'dead'"), postgresql_where=sa.text("status = 'dead'")),
)


# --- payloads of the topics the service emits ---------------------------------------------------------------

TOPIC_LISTING_HOLD = "listing.hold"
TOPIC_DECISION_ENFORCEMENT = "decision.enforcement"

Text = Annotated[str, StringConstraints(min_length=1, max_length=ID_LENGTH)]


class ListingHold(BaseModel):
    """``listing.hold``: hold the listing pending review (an active ``hold`` rule hit it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    listing_id: Text
    case_id: Text | None = None
    rules: list[str]  # "<rule_id> v<version>" of the hold rules that hit
    reasons: list[str]  # what the reviewer reads, e.g. "Rule `thc-cart-cheap` v3: ..."
    held_at: AwareDatetime


class DecisionEnforcement(BaseModel):
    """``decision.enforcement``: a reviewer decided a case; the marketplace applies (or lifts) the action."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_id: Text
    case_id: Text
    entity_type: EntityName
    entity_id: Text
    outcome: Literal["violation", "no_violation", "escalate"]
    enforcement_action: str | None = None  # e.g. "remove_listing", "suspend_account"; None: no action
    risk_type: str | None = None
    decided_at: AwareDatetime


# --- the outbox -----------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscriber as the outbox sees it: which topics it receives and when its deliveries are dead letters."""

    name: str
    topics: tuple[str, ...]  # exact topics, or fnmatch patterns: "decision.*", "*"
    max_attempts: int = 10

    def __post_init__(self) -> None:
        require_text(self.name, "subscriber name", NAME_LENGTH)
        if not self.topics:
            raise ValueError(f"subscriber {self.name!r} subscribes to no topic")
        bad = [t for t in self.topics if not _TOPIC_PATTERN.match(t)]
        if bad:
            raise ValueError(f"subscriber {self.name!r}: bad topic patterns {bad}")
        if self.max_attempts < 1:
            raise ValueError(f"subscriber {self.name!r}: max_attempts must be at least 1")

    def wants(self, topic: str) -> bool:
        return any(fnmatch.fnmatchcase(topic, pattern) for pattern in self.topics)


@dataclass(frozen=True, slots=True)
class NewEvent:
    topic: str
    key: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """One delivery claimed by a dispatcher: the event, its attempt number and the lease's token."""

    delivery_id: int
    event_id: str
    subscriber: str
    topic: str
    key: str
    payload: dict[str, Any]
    created_at: datetime
    attempt: int  # 1 for the first attempt
    claim_token: str


@dataclass(frozen=True, slots=True)
class DeliveryBacklog:
    subscriber: str
    pending: int  # not yet delivered (due now or later, including those being retried)
    retrying: int  # pending after at least one failed or interrupted attempt
    dead: int
    oldest_pending_at: datetime | None  # the next_attempt_at furthest in the past


@dataclass(frozen=True, slots=True)
class DeadLetter:
    event_id: str
    topic: str
    key: str
    attempts: int
    last_error: str | None


def normalise_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round trip: refuses NaN/infinity and non-JSON values now (not in a sink), and the size limit."""
    try:
        encoded = json.dumps(dict(payload), allow_nan=False, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as error:
        raise ValueError(f"payload must be JSON with finite numbers: {error}") from error
    if len(encoded.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload is larger than {MAX_PAYLOAD_BYTES} bytes")
    if "\\u0000" in encoded:
        raise ValueError("payload must not contain NUL characters")  # PostgreSQL's JSONB cannot hold them
    decoded: dict[str, Any] = json.loads(encoded)
    return decoded


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return require_aware_utc(value, "payload datetime").isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


class Outbox:
    """Writes events in the caller's transaction and tracks their delivery to each subscriber."""

    def __init__(self, engine: sa.Engine, subscriptions: Sequence[Subscription], *,
                 clock: Callable[[], datetime] = utc_now) -> None:
        names = [s.name for s in subscriptions]
        if len(set(names)) != len(names):
            raise ValueError(f"subscriber names must be unique, got {names}")
        self._engine = engine
        self.subscriptions: dict[str, Subscription] = {s.name: s for s in subscriptions}
        self._clock = clock

    # --- writing, in the caller's transaction --------------------------------------------------------------

    def enqueue(self, connection: sa.Connection, topic: str, key: str,
                payload: Mapping[str, Any] | BaseModel) -> str:
        """Write one event (and its deliveries) on ``connection``'s open transaction; returns its id."""
        body = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
        return self.enqueue_many(connection, [NewEvent(topic, key, body)])[0]

    def enqueue_many(self, connection: sa.Connection, events: Sequence[NewEvent]) -> list[str]:
        """Write events (and their deliveries) on ``connection``'s open transaction; returns their ids."""
        if not events:
            return []
        if not connection.in_transaction():
            raise ValueError("enqueue needs the caller's open transaction (engine.begin()), so the event commits "
                             "or rolls back with the change that causes it")
        now = require_aware_utc(self._clock(), "clock")
        # sorted: ids of one batch share their millisecond, and ascend in the order the events were given
        ids = sorted(new_score_ids(len(events)))
        event_rows: list[dict[str, Any]] = []
        delivery_rows: list[dict[str, Any]] = []
        for event_id, event in zip(ids, events, strict=True):
            if not isinstance(event.topic, str) or len(event.topic) > TOPIC_LENGTH or not _TOPIC.match(event.topic):
                raise ValueError(f"topic {event.topic!r} must be dot-separated lower-case words")
            require_text(event.key, "key", ID_LENGTH)
            event_rows.append({"event_id": event_id, "topic": event.topic, "key": event.key,
                               "payload": normalise_payload(event.payload), "created_at": now})
            delivery_rows.extend(
                {"event_id": event_id, "subscriber": name, "status": DeliveryStatus.PENDING.value, "attempts": 0,
                 "next_attempt_at": now}
                for name, subscription in self.subscriptions.items() if subscription.wants(event.topic))
        connection.execute(outbox_events.insert(), event_rows)
        if delivery_rows:
            connection.execute(outbox_deliveries.insert(), delivery_rows)
        return ids

    # --- delivering ------------------------------------------------------------------------------------------

    def claim_due(self, subscriber: str, limit: int, lease_seconds: float) -> list[ClaimedDelivery]:
        """Claim up to ``limit`` due deliveries of ``subscriber`` (oldest due first) for ``lease_seconds``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if not lease_seconds > 0:
            raise ValueError("lease_seconds must be positive")
        d = outbox_deliveries
        now = require_aware_utc(self._clock(), "clock")
        token = secrets.token_hex(TOKEN_LENGTH // 2)
        due = due_query(subscriber, now, limit)
        with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            claimed = connection.execute(
                d.update()
                .where(d.c.id.in_(due.scalar_subquery()))
                .values(attempts=d.c.attempts + 1, next_attempt_at=now + timedelta(seconds=lease_seconds),
                        claim_token=token)
                .returning(d.c.id, d.c.event_id, d.c.attempts)
            ).all()
            if not claimed:
                return []
            events = {
                row.event_id: row
                for row in connection.execute(sa.select(outbox_events).where(
                    outbox_events.c.event_id.in_([c.event_id for c in claimed])))
            }
        deliveries = [
            ClaimedDelivery(delivery_id=int(c.id), event_id=c.event_id, subscriber=subscriber,
                            topic=events[c.event_id].topic, key=events[c.event_id].key,
                            payload=dict(events[c.event_id].payload), created_at=events[c.event_id].created_at,
                            attempt=int(c.attempts), claim_token=token)
            for c in claimed
        ]
        return sorted(deliveries, key=lambda delivery: delivery.delivery_id)  # the order they were enqueued

    def mark_delivered(self, deliveries: Sequence[ClaimedDelivery]) -> int:
        """Record successful deliveries; returns how many were still held by their claim (a lease that ran out
        and was claimed again by another dispatcher is that dispatcher's to settle)."""
        if not deliveries:
            return 0
        now = require_aware_utc(self._clock(), "clock")
        d = outbox_deliveries
        statement = (
            d.update()
            .where(d.c.id == sa.bindparam("b_id"), d.c.claim_token == sa.bindparam("b_token"),
                   d.c.status == _PENDING)
            .values(status=DeliveryStatus.DELIVERED.value, delivered_at=now, claim_token=None, last_error=None)
        )
        with self._engine.begin() as connection:
            result = connection.execute(statement, [{"b_id": x.delivery_id, "b_token": x.claim_token}
                                                    for x in deliveries])
        return int(result.rowcount or 0)

    def mark_failed(self, delivery: ClaimedDelivery, error: str, next_attempt_at: datetime) -> DeliveryStatus | None:
        """Record a failed attempt: due again at ``next_attempt_at``, or dead after the subscriber's
        ``max_attempts``. Returns the new status, or None if the claim was no longer held."""
        subscription = self.subscriptions.get(delivery.subscriber)
        if subscription is None:
            raise ValueError(f"subscriber {delivery.subscriber!r} is not configured on this outbox")
        status = DeliveryStatus.DEAD if delivery.attempt >= subscription.max_attempts else DeliveryStatus.PENDING
        d = outbox_deliveries
        message = (error or "unknown error")[:NOTE_LENGTH]
        with self._engine.begin() as connection:
            result = connection.execute(
                d.update()
                .where(d.c.id == delivery.delivery_id, d.c.claim_token == delivery.claim_token,
                       d.c.status == _PENDING)
                .values(status=status.value, next_attempt_at=require_aware_utc(next_attempt_at, "next_attempt_at"),
                        claim_token=None, last_error=message)
            )
        return status if result.rowcount == 1 else None

    def release(self, deliveries: Sequence[ClaimedDelivery]) -> int:
        """Give claimed deliveries back unattempted (a dispatcher stopping before it sent them): due now, and
        the claim's attempt is not counted."""
        if not deliveries:
            return 0
        now = require_aware_utc(self._clock(), "clock")
        d = outbox_deliveries
        statement = (
            d.update()
            .where(d.c.id == sa.bindparam("b_id"), d.c.claim_token == sa.bindparam("b_token"),
                   d.c.status == _PENDING)
            .values(next_attempt_at=now, claim_token=None, attempts=d.c.attempts - 1)
        )
        with self._engine.begin() as connection:
            result = connection.execute(statement, [{"b_id": x.delivery_id, "b_token": x.claim_token}
                                                    for x in deliveries])
        return int(result.rowcount or 0)

    # --- operating -------------------------------------------------------------------------------------------

    def backlog(self, subscriber: str) -> DeliveryBacklog:
        """Pending, retrying and dead deliveries of one subscriber (read from the partial indexes)."""
        d = outbox_deliveries
        with self._engine.connect() as connection:
            pending = connection.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((d.c.attempts > 0, 1), else_=0)), 0),
                          sa.func.min(d.c.next_attempt_at))
                .where(d.c.subscriber == subscriber, d.c.status == _PENDING)
            ).one()
            dead = connection.execute(
                sa.select(sa.func.count()).where(d.c.subscriber == subscriber, d.c.status == _DEAD)
            ).scalar_one()
        return DeliveryBacklog(subscriber=subscriber, pending=int(pending[0]), retrying=int(pending[1]),
                               dead=int(dead), oldest_pending_at=pending[2])

    def dead(self, subscriber: str, limit: int = 100) -> list[DeadLetter]:
        d, e = outbox_deliveries, outbox_events
        query = (
            sa.select(d.c.event_id, e.c.topic, e.c.key, d.c.attempts, d.c.last_error)
            .join(e, e.c.event_id == d.c.event_id)
            .where(d.c.subscriber == subscriber, d.c.status == _DEAD)
            .order_by(d.c.id)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [DeadLetter(r.event_id, r.topic, r.key, int(r.attempts), r.last_error)
                    for r in connection.execute(query)]

    def retry_dead(self, subscriber: str, event_ids: Sequence[str] | None = None) -> int:
        """Make dead letters pending again with a fresh attempt count (an operator fixed the subscriber)."""
        d = outbox_deliveries
        now = require_aware_utc(self._clock(), "clock")
        statement = d.update().where(d.c.subscriber == subscriber, d.c.status == _DEAD)
        if event_ids is not None:
            statement = statement.where(d.c.event_id.in_(list(event_ids)))
        with self._engine.begin() as connection:
            result = connection.execute(statement.values(status=DeliveryStatus.PENDING.value, attempts=0,
                                                         next_attempt_at=now, claim_token=None))
        return int(result.rowcount or 0)

    def purge(self, older_than: datetime, *, limit: int = 10_000) -> int:
        """Delete up to ``limit`` events created before ``older_than`` whose every delivery is delivered (with
        their deliveries); returns the events deleted. Pending and dead ones are kept."""
        d, e = outbox_deliveries, outbox_events
        cutoff = require_aware_utc(older_than, "older_than")
        not_done = sa.select(d.c.id).where(d.c.event_id == e.c.event_id,
                                           d.c.status != DeliveryStatus.DELIVERED.value)
        candidates = (sa.select(e.c.event_id).where(e.c.created_at < cutoff, ~not_done.exists())
                      .order_by(e.c.created_at).limit(limit))
        with self._engine.begin() as connection:
            ids = list(connection.execute(candidates).scalars())
            for start in range(0, len(ids), 500):  # bounded IN lists (SQLite's parameter limit)
                chunk = ids[start:start + 500]
                connection.execute(d.delete().where(d.c.event_id.in_(chunk)))
                connection.execute(e.delete().where(e.c.event_id.in_(chunk)))
        return len(ids)


def due_query(subscriber: str, now: datetime, limit: int) -> sa.Select[Any]:
    """The due deliveries ``claim_due`` takes (tests read its plan: the partial index, never the history)."""
    d = outbox_deliveries
    return (sa.select(d.c.id)
            .where(d.c.subscriber == subscriber, d.c.status == _PENDING, d.c.next_attempt_at <= now)
            .order_by(d.c.next_attempt_at, d.c.id).limit(limit))
