"""Signed webhooks through the dispatcher against a real local HTTP receiver: down then up, refusing then
accepting, duplicates deduplicated by the receiver, dead letters, the background thread, and the metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from delivery.config import DeliveryConfig, RetryPolicy
from delivery.dispatcher import Dispatcher, wait_for
from delivery.envelope import (
    ATTEMPT_HEADER,
    EVENT_ID_HEADER,
    TIMESTAMP_HEADER,
    TOPIC_HEADER,
    signature,
    verify_signature,
)
from stores.outbox import Outbox
from tests.test_delivery_helpers import SECRET, Clock, Receiver, enqueue_holds, free_port, make_outbox

pytest_plugins = ("tests.test_delivery_helpers",)

FAST_RETRY = {"max_attempts": 4, "initial_backoff_seconds": 1.0, "multiplier": 2.0, "max_backoff_seconds": 30.0,
              "jitter": 0.0}


def webhook_config(url: str, **retry: float) -> DeliveryConfig:
    return DeliveryConfig.model_validate({
        "batch_size": 20, "lease_seconds": 30, "poll_seconds": 0.05,
        "subscribers": [{"kind": "webhook", "name": "marketplace", "topics": ["listing.*"], "url": url,
                         "secret": SECRET, "timeout_seconds": 2, "retry": {**FAST_RETRY, **retry}}],
    })


def drain(dispatcher: Dispatcher, clock: Clock, passes: int = 50, step: float = 31.0) -> None:
    """Passes until nothing is pending, moving the clock past every back-off and pause (bounded)."""
    for _ in range(passes):
        dispatcher.run_once()
        if dispatcher.metrics().subscribers["marketplace"].pending == 0:
            return
        clock.advance(step)


def test_receiver_down_then_up_gets_every_event_once(store_engine: Engine, receiver: Receiver) -> None:
    clock = Clock()
    config = webhook_config(receiver.url)
    outbox = make_outbox(store_engine, config, clock)
    ids = enqueue_holds(store_engine, outbox, 30)
    dispatcher = Dispatcher(outbox, config, clock=clock)
    # nothing listens on the port: unreachable, the subscriber is paused, no attempt is counted
    assert dispatcher.run_once() == 0
    down = dispatcher.metrics().subscribers["marketplace"]
    assert (down.pending, down.retrying, down.dead, down.delivered, down.unreachable) == (30, 0, 0, 0, 1)
    assert down.paused_until is not None and "ConnectError" in (down.last_error or "")
    assert dispatcher.run_once() == 0  # still paused: not even a connection attempt
    receiver.start()
    clock.advance(5)
    drain(dispatcher, clock)
    up = dispatcher.metrics().subscribers["marketplace"]
    assert (up.pending, up.dead, up.delivered, up.failed) == (0, 0, 30, 0)
    assert receiver.unique == set(ids) and set(receiver.arrivals.values()) == {1}
    assert receiver.bad_signatures == 0
    headers = {k.lower(): v for k, v in receiver.headers[ids[0]].items()}
    assert headers[EVENT_ID_HEADER.lower()] == ids[0] and headers["idempotency-key"] == ids[0]
    assert headers[TOPIC_HEADER.lower()] == "listing.hold" and headers[ATTEMPT_HEADER.lower()] == "1"
    body = receiver.bodies[ids[0]]
    assert body["payload"] == {"listing_id": "L0", "rules": ["thc-cart-cheap v3"]} and body["key"] == "L0"
    dispatcher.close()


def test_refusals_back_off_and_duplicates_are_deduplicated(store_engine: Engine, receiver: Receiver) -> None:
    clock = Clock()
    config = webhook_config(receiver.url)
    outbox = make_outbox(store_engine, config, clock)
    ids = enqueue_holds(store_engine, outbox, 10)
    receiver.start()
    receiver.refuse = 4  # 503 to the first four
    receiver.take_but_fail = 3  # then three taken but answered 500: the sender re-sends them
    dispatcher = Dispatcher(outbox, config, clock=clock)
    assert dispatcher.run_once() == 10
    first = dispatcher.metrics().subscribers["marketplace"]
    assert (first.delivered, first.failed, first.retrying, first.pending) == (3, 7, 7, 7)
    assert dispatcher.run_once() == 0  # nothing due before the back-off (1 s) ends
    clock.advance(1.5)
    assert dispatcher.run_once() == 7
    final = dispatcher.metrics().subscribers["marketplace"]
    assert (final.delivered, final.pending, final.dead) == (10, 0, 0)
    assert receiver.unique == set(ids)
    assert sum(receiver.arrivals.values()) == 13 and max(receiver.arrivals.values()) == 2  # 3 duplicates
    dispatcher.close()


def test_retry_after_is_honoured(store_engine: Engine, receiver: Receiver) -> None:
    clock = Clock()
    config = webhook_config(receiver.url)
    outbox = make_outbox(store_engine, config, clock)
    enqueue_holds(store_engine, outbox, 1)
    receiver.start()
    receiver.refuse, receiver.retry_after = 1, "20"
    dispatcher = Dispatcher(outbox, config, clock=clock)
    dispatcher.run_once()
    clock.advance(10)  # past the 1 s back-off, not past Retry-After
    assert dispatcher.run_once() == 0
    clock.advance(11)
    assert dispatcher.run_once() == 1 and receiver.requests == 2
    dispatcher.close()


def test_a_receiver_that_always_refuses_gets_dead_letters(store_engine: Engine, receiver: Receiver) -> None:
    clock = Clock()
    config = webhook_config(receiver.url)
    outbox = make_outbox(store_engine, config, clock)
    (event_id,) = enqueue_holds(store_engine, outbox, 1)
    receiver.start()
    receiver.refuse = 1_000
    dispatcher = Dispatcher(outbox, config, clock=clock)
    drain(dispatcher, clock)
    metrics = dispatcher.metrics().subscribers["marketplace"]
    assert (metrics.pending, metrics.dead, metrics.failed, metrics.dead_lettered) == (0, 1, 4, 1)
    assert receiver.requests == 4  # max_attempts
    (dead,) = outbox.dead("marketplace")
    assert dead.event_id == event_id and dead.last_error is not None and dead.last_error.startswith("HTTP 503")
    receiver.refuse = 0
    assert outbox.retry_dead("marketplace") == 1
    drain(dispatcher, clock)
    assert receiver.unique == {event_id}
    dispatcher.close()


def test_background_thread_delivers_while_events_arrive(store_engine: Engine, receiver: Receiver) -> None:
    config = webhook_config(receiver.url, initial_backoff_seconds=0.05, max_backoff_seconds=0.2)
    outbox = Outbox(store_engine, config.subscriptions())  # the real clock, as in the service
    receiver.start()
    receiver.refuse = 2
    dispatcher = Dispatcher(outbox, config)
    dispatcher.start()
    try:
        ids: list[str] = []
        for batch in range(5):
            ids += enqueue_holds(store_engine, outbox, 8, start=batch * 8)
            time.sleep(0.02)
        assert wait_for(lambda: receiver.unique == set(ids), timeout=30)
        assert dispatcher.running
    finally:
        assert dispatcher.stop(timeout=10)
    assert not dispatcher.running
    metrics = dispatcher.metrics()
    assert metrics.subscribers["marketplace"].delivered == 40 and metrics.subscribers["marketplace"].pending == 0


def test_signature_verification_reference() -> None:
    body = json.dumps({"id": "x"}).encode()
    now = 1_800_000_000
    header = signature(SECRET, now, body)
    assert header.startswith(f"t={now},v1=")
    assert verify_signature(SECRET, header, body, now=now + 10)
    assert verify_signature(["old-secret-xxxxxxxxxxxxxxxxxxxxxxxxx", SECRET], header, body, now=now)  # rotation
    assert not verify_signature(SECRET, header, body + b" ", now=now)  # tampered body
    assert not verify_signature("another-secret-xxxxxxxxxxxxxxxxxxxx", header, body, now=now)
    assert not verify_signature(SECRET, header, body, now=now + 301)  # replayed too late
    assert not verify_signature(SECRET, "v1=abc", body, now=now)
    assert not verify_signature(SECRET, "t=notanumber,v1=abc", body, now=now)
    assert TIMESTAMP_HEADER == "Triage-Event-Timestamp"


def test_config_is_validated_as_data() -> None:
    with pytest.raises(ValidationError, match="secret"):
        DeliveryConfig.model_validate({"subscribers": [
            {"kind": "webhook", "name": "m", "topics": ["*"], "url": "http://127.0.0.1:1/x", "secret": "short"}]})
    with pytest.raises(ValidationError, match="unique"):
        webhook_config("http://127.0.0.1:1/x").model_validate({"subscribers": [
            {"kind": "nats", "name": "a", "topics": ["*"]}, {"kind": "rabbitmq", "name": "a", "topics": ["*"]}]})
    with pytest.raises(ValidationError, match="lease_seconds"):
        DeliveryConfig.model_validate({"lease_seconds": 5, "subscribers": [
            {"kind": "nats", "name": "a", "topics": ["*"], "timeout_seconds": 4}]})
    with pytest.raises(ValidationError):
        DeliveryConfig.model_validate({"subscribers": [{"kind": "smtp", "name": "a", "topics": ["*"]}]})
    config = DeliveryConfig.model_validate({"subscribers": [
        {"kind": "rabbitmq", "name": "bus", "topics": ["decision.*"], "url": "amqp://u:hunter2@h/%2F"}]})
    assert "hunter2" not in repr(config)
    assert config.subscriptions()[0].wants("decision.enforcement")


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    policy = RetryPolicy(initial_backoff_seconds=1, multiplier=2, max_backoff_seconds=30, jitter=0.5)
    assert [policy.backoff_seconds(n, lambda: 0.0) for n in (1, 2, 3, 5, 6, 50)] == [1, 2, 4, 16, 30, 30]
    assert policy.backoff_seconds(3, lambda: 1.0) == 2.0  # up to half shorter


def test_outbox_and_config_must_agree(store_engine: Engine) -> None:
    config = webhook_config(f"http://127.0.0.1:{free_port()}/x")
    with pytest.raises(ValueError, match="subscriptions"):
        Dispatcher(make_outbox(store_engine, DeliveryConfig(), Clock()), config)


def test_delivery_sits_above_stores_only() -> None:
    # a fresh interpreter: importing every delivery module loads no serving, training, model or CLI code
    # (the whole layering is `make lint`'s import contract; this checks what actually loads)
    code = ("import sys, delivery, delivery.dispatcher, delivery.nats_sink, delivery.rabbitmq_sink; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'serving', 'training', 'cli', 'models'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "[]"
