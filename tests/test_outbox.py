"""The transactional outbox on SQLite and PostgreSQL: events commit (or roll back) with the caller's change, each
subscriber's deliveries are independent, claims are leased and exclusive under concurrent dispatchers, failures
back off then dead-letter, and claiming reads only the pending rows."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from stores.outbox import (
    MAX_PAYLOAD_BYTES,
    TOPIC_DECISION_ENFORCEMENT,
    TOPIC_LISTING_HOLD,
    DecisionEnforcement,
    DeliveryStatus,
    ListingHold,
    NewEvent,
    Outbox,
    Subscription,
    due_query,
    outbox_deliveries,
    outbox_events,
)
from stores.records import utc_now
from tests.conftest_stores import BASE_TIME
from tests.test_rule_store import Clock, explain

pytest_plugins = ("tests.conftest_stores",)

SUBSCRIPTIONS = (
    Subscription("marketplace", (TOPIC_LISTING_HOLD, "decision.*"), max_attempts=3),
    Subscription("analytics", ("*",), max_attempts=5),
    Subscription("holds-only", (TOPIC_LISTING_HOLD,)),
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(engine: Engine, clock: Clock) -> Outbox:
    return Outbox(engine, SUBSCRIPTIONS, clock=clock)


def hold(listing_id: str = "L1") -> ListingHold:
    return ListingHold(listing_id=listing_id, case_id="C1", rules=["thc-cart-cheap v3"],
                       reasons=["Rule `thc-cart-cheap` v3: THC vape cartridge under 50"], held_at=BASE_TIME)


def count(engine: Engine, table: sa.Table, *where: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())


def test_events_commit_and_roll_back_with_the_callers_transaction(engine: Engine, outbox: Outbox) -> None:
    with engine.begin() as connection:
        event_id = outbox.enqueue(connection, TOPIC_LISTING_HOLD, "L1", hold())
    with pytest.raises(RuntimeError, match="case store failed"), engine.begin() as connection:
        outbox.enqueue(connection, TOPIC_LISTING_HOLD, "L2", hold("L2"))
        raise RuntimeError("case store failed")
    assert count(engine, outbox_events) == 1
    # fan-out to the subscribers whose patterns match: all three want listing.hold
    assert count(engine, outbox_deliveries, outbox_deliveries.c.event_id == event_id) == 3
    with engine.begin() as connection:
        enforcement = DecisionEnforcement(decision_id="D1", case_id="C1", entity_type="listing", entity_id="L1",
                                          outcome="violation", enforcement_action="remove_listing",
                                          decided_at=BASE_TIME)
        second = outbox.enqueue(connection, TOPIC_DECISION_ENFORCEMENT, "L1", enforcement)
    assert {r for (r,) in sa_rows(engine, sa.select(outbox_deliveries.c.subscriber).where(
        outbox_deliveries.c.event_id == second))} == {"marketplace", "analytics"}
    assert second > event_id  # time-ordered ids


def sa_rows(engine: Engine, query: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(query))


def test_enqueue_refuses_what_a_sink_could_not_carry(engine: Engine, outbox: Outbox) -> None:
    with engine.connect() as connection, pytest.raises(ValueError, match="open transaction"):
        outbox.enqueue(connection, TOPIC_LISTING_HOLD, "L1", {"a": 1})
    with engine.begin() as connection:
        for topic in ("Listing.Hold", "listing..hold", "", "x" * 200):
            with pytest.raises(ValueError, match="topic"):
                outbox.enqueue(connection, topic, "L1", {"a": 1})
        with pytest.raises(ValueError, match="finite"):
            outbox.enqueue(connection, TOPIC_LISTING_HOLD, "L1", {"price": float("nan")})
        with pytest.raises(ValueError, match="larger than"):
            outbox.enqueue(connection, TOPIC_LISTING_HOLD, "L1", {"blob": "x" * MAX_PAYLOAD_BYTES})
        with pytest.raises(ValueError, match="NUL"):
            outbox.enqueue(connection, TOPIC_LISTING_HOLD, "L1", {"text": "a\x00b"})
        with pytest.raises(ValueError, match="key"):
            outbox.enqueue(connection, TOPIC_LISTING_HOLD, " ", {"a": 1})
    assert count(engine, outbox_events) == 0
    with pytest.raises(ValueError, match="unique"):
        Outbox(engine, [Subscription("a", ("*",)), Subscription("a", ("x",))])
    with pytest.raises(ValueError, match="topic patterns"):
        Subscription("a", ("Listing",))


def test_claims_are_leased_and_settled_by_their_token(engine: Engine, outbox: Outbox, clock: Clock) -> None:
    with engine.begin() as connection:
        ids = outbox.enqueue_many(connection, [NewEvent(TOPIC_LISTING_HOLD, f"L{i}", {"i": i}) for i in range(5)])
    first = outbox.claim_due("marketplace", limit=3, lease_seconds=60)
    assert [d.event_id for d in first] == ids[:3] and {d.attempt for d in first} == {1}
    assert first[0].payload == {"i": 0} and first[0].topic == TOPIC_LISTING_HOLD and first[0].key == "L0"
    second = outbox.claim_due("marketplace", limit=10, lease_seconds=60)
    assert [d.event_id for d in second] == ids[3:]  # leased ones are not handed out twice
    assert outbox.claim_due("marketplace", limit=10, lease_seconds=60) == []
    # the other subscribers are independent
    assert len(outbox.claim_due("analytics", limit=10, lease_seconds=60)) == 5
    assert outbox.mark_delivered(first) == 3
    clock.now += timedelta(seconds=61)  # the second claim's dispatcher died: its lease ran out
    again = outbox.claim_due("marketplace", limit=10, lease_seconds=60)
    assert [d.event_id for d in again] == ids[3:] and {d.attempt for d in again} == {2}
    assert outbox.mark_delivered(second) == 0  # the stale claim cannot settle what was claimed again
    assert outbox.mark_failed(second[0], "late", clock.now) is None
    assert outbox.mark_delivered(again) == 2
    backlog = outbox.backlog("marketplace")
    assert (backlog.pending, backlog.retrying, backlog.dead) == (0, 0, 0)
    assert outbox.backlog("holds-only").pending == 5


def test_failures_back_off_then_dead_letter(engine: Engine, outbox: Outbox, clock: Clock) -> None:
    with engine.begin() as connection:
        (event_id,) = outbox.enqueue_many(connection, [NewEvent(TOPIC_LISTING_HOLD, "L1", {"x": 1})])
    statuses = []
    for attempt in (1, 2, 3):
        (claim,) = outbox.claim_due("marketplace", limit=1, lease_seconds=30)
        assert claim.attempt == attempt
        retry_at = clock.now + timedelta(seconds=10 * attempt)
        statuses.append(outbox.mark_failed(claim, f"HTTP 503 (attempt {attempt})", retry_at))
        assert outbox.claim_due("marketplace", limit=1, lease_seconds=30) == []  # not due before retry_at
        if attempt < 3:
            assert outbox.backlog("marketplace").retrying == 1
        clock.now = retry_at
    assert statuses == [DeliveryStatus.PENDING, DeliveryStatus.PENDING, DeliveryStatus.DEAD]
    assert outbox.claim_due("marketplace", limit=1, lease_seconds=30) == []
    (dead,) = outbox.dead("marketplace")
    assert (dead.event_id, dead.attempts, dead.last_error) == (event_id, 3, "HTTP 503 (attempt 3)")
    assert outbox.backlog("marketplace").dead == 1
    assert outbox.retry_dead("marketplace") == 1
    (claim,) = outbox.claim_due("marketplace", limit=1, lease_seconds=30)
    assert claim.attempt == 1
    assert outbox.release([claim]) == 1  # given back unattempted: due now, attempt not counted
    (claim,) = outbox.claim_due("marketplace", limit=1, lease_seconds=30)
    assert claim.attempt == 1


def test_purge_keeps_what_is_not_delivered_everywhere(engine: Engine, outbox: Outbox, clock: Clock) -> None:
    with engine.begin() as connection:
        old = outbox.enqueue_many(connection, [NewEvent(TOPIC_DECISION_ENFORCEMENT, f"L{i}", {}) for i in range(3)])
    for name in ("marketplace", "analytics"):
        claims = outbox.claim_due(name, limit=10, lease_seconds=30)
        outbox.mark_delivered([c for c in claims if c.event_id != old[2] or name == "marketplace"])
    clock.now += timedelta(days=8)
    with engine.begin() as connection:
        outbox.enqueue(connection, TOPIC_DECISION_ENFORCEMENT, "L9", {})
    assert outbox.purge(clock.now - timedelta(days=7)) == 2
    remaining = {r for (r,) in sa_rows(engine, sa.select(outbox_events.c.event_id))}
    assert old[2] in remaining and len(remaining) == 2  # analytics has not received old[2]; the new one is young
    assert count(engine, outbox_deliveries, outbox_deliveries.c.event_id.in_(old[:2])) == 0


def test_concurrent_dispatchers_claim_disjoint_deliveries(engine: Engine) -> None:
    outbox = Outbox(engine, SUBSCRIPTIONS)
    with engine.begin() as connection:
        ids = outbox.enqueue_many(connection, [NewEvent(TOPIC_LISTING_HOLD, f"L{i}", {"i": i}) for i in range(300)])
    claimed: Counter[str] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def dispatcher() -> None:
        # each thread has its own pooled connection: row locks on PostgreSQL, SQLite's single writer otherwise
        try:
            while True:
                batch = outbox.claim_due("marketplace", limit=7, lease_seconds=300)
                if not batch:
                    return
                with lock:
                    claimed.update(d.event_id for d in batch)
                outbox.mark_delivered(batch)
        except BaseException as error:  # surfaced by the assertion below, with the thread's error
            errors.append(error)

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert set(claimed) == set(ids) and set(claimed.values()) == {1}  # every event once, none twice
    assert outbox.backlog("marketplace").pending == 0


def test_claiming_reads_only_pending_rows(engine: Engine) -> None:
    outbox = Outbox(engine, [Subscription("marketplace", ("*",))])
    now = utc_now()
    with engine.begin() as connection:
        connection.execute(outbox_events.insert(), [
            {"event_id": f"{i:032x}", "topic": "listing.hold", "key": f"L{i}", "payload": {}, "created_at": now}
            for i in range(20_000)])
        connection.execute(outbox_deliveries.insert(), [
            {"event_id": f"{i:032x}", "subscriber": "marketplace", "attempts": 1, "next_attempt_at": now,
             "status": "delivered" if i < 19_990 else "pending", "delivered_at": now if i < 19_990 else None}
            for i in range(20_000)])
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE outbox_deliveries")
        plan = explain(connection, due_query("marketplace", now + timedelta(seconds=1), 100))
    assert "ix_outbox_deliveries_due" in plan and "Seq Scan" not in plan, plan
    assert len(outbox.claim_due("marketplace", limit=100, lease_seconds=10)) == 10


def test_ids_follow_time(engine: Engine) -> None:
    outbox = Outbox(engine, [])
    seen: list[str] = []
    for _ in range(3):
        with engine.begin() as connection:
            seen.append(outbox.enqueue(connection, "x.y", "k", {}))
        time.sleep(0.002)
    assert seen == sorted(seen)
    assert count(engine, outbox_deliveries) == 0  # no subscriber: the event is kept, nothing to deliver
