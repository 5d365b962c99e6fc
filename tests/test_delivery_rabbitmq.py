"""RabbitMQ delivery against the broker on 127.0.0.1:5672 (guest/guest): with the broker unreachable (a wrong
port) nothing is lost or counted, with the right port every event arrives as a persistent, confirmed message whose
``message_id`` is the event id (the consumer deduplicates re-sends), and a message no queue is bound for is refused,
not dropped. Skips, saying why, when the broker is unreachable."""

from __future__ import annotations

import socket
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from sqlalchemy.engine import Engine

from delivery.config import DeliveryConfig, RabbitMQSubscriber
from delivery.dispatcher import Dispatcher
from delivery.rabbitmq_sink import RabbitMQSink
from tests.test_delivery_helpers import Clock, enqueue_holds, free_port, make_outbox

pytest_plugins = ("tests.test_delivery_helpers",)

HOST, PORT = "127.0.0.1", 5672


@pytest.fixture
def broker() -> Iterator[tuple[pika.BlockingConnection, str]]:
    """A connection to the broker and a fresh exchange name (deleted afterwards)."""
    try:
        with socket.create_connection((HOST, PORT), timeout=2):
            pass
    except OSError as error:
        pytest.skip(f"RabbitMQ at {HOST}:{PORT} is unreachable ({error}); RabbitMQ delivery is not tested")
    connection = pika.BlockingConnection(pika.ConnectionParameters(HOST, PORT, credentials=pika.PlainCredentials(
        "guest", "guest"), connection_attempts=1, socket_timeout=5))
    exchange = f"triage-test-{uuid.uuid4().hex[:10]}"
    try:
        yield connection, exchange
    finally:
        channel = connection.channel()
        channel.exchange_delete(exchange)
        connection.close()


def rabbit_config(exchange: str, port: int) -> DeliveryConfig:
    return DeliveryConfig.model_validate({
        "batch_size": 10, "lease_seconds": 30,
        "subscribers": [{"kind": "rabbitmq", "name": "marketplace", "topics": ["listing.*"],
                         "url": f"amqp://guest:guest@{HOST}:{port}/%2F", "exchange": exchange,
                         "timeout_seconds": 3, "secret": "s" * 32,
                         "retry": {"max_attempts": 3, "initial_backoff_seconds": 1, "max_backoff_seconds": 5,
                                   "jitter": 0}}],
    })


def bound_queue(connection: pika.BlockingConnection, exchange: str) -> tuple[Any, str]:
    channel = connection.channel()
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, exchange, routing_key="listing.#")
    return channel, queue


def consume_all(channel: Any, queue: str) -> list[tuple[Any, bytes]]:
    messages: list[tuple[Any, bytes]] = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return messages
        messages.append((properties, body))


def drain(dispatcher: Dispatcher, clock: Clock, passes: int = 20) -> None:
    for _ in range(passes):
        dispatcher.run_once()
        if dispatcher.metrics().subscribers["marketplace"].pending == 0:
            return
        clock.advance(6)


def test_broker_unreachable_then_reachable_delivers_every_event(
    store_engine: Engine, broker: tuple[pika.BlockingConnection, str]
) -> None:
    connection, exchange = broker
    channel, queue = bound_queue(connection, exchange)
    clock = Clock()
    wrong = rabbit_config(exchange, free_port())
    outbox = make_outbox(store_engine, wrong, clock)
    ids = enqueue_holds(store_engine, outbox, 15)
    down = Dispatcher(outbox, wrong, clock=clock)
    assert down.run_once() == 0
    metrics = down.metrics().subscribers["marketplace"]
    assert (metrics.pending, metrics.retrying, metrics.unreachable, metrics.delivered) == (15, 0, 1, 0)
    down.close()
    # the same subscriber, now pointed at the broker: its deliveries (and their attempt counts) carry over
    right = rabbit_config(exchange, PORT)
    dispatcher = Dispatcher(outbox, right, clock=clock)
    drain(dispatcher, clock)
    assert dispatcher.metrics().subscribers["marketplace"].delivered == 15
    # a dispatcher publishes three events and dies before recording it: they are published again
    crashed = enqueue_holds(store_engine, outbox, 3, start=15)
    claims = outbox.claim_due("marketplace", limit=10, lease_seconds=30)
    subscriber = right.subscribers[0]
    assert isinstance(subscriber, RabbitMQSubscriber)
    other = RabbitMQSink(subscriber)
    try:
        assert all(r.delivered for r in other.send(claims))
    finally:
        other.close()
    clock.advance(31)
    drain(dispatcher, clock)
    final = dispatcher.metrics().subscribers["marketplace"]
    assert (final.pending, final.dead, final.delivered) == (0, 0, 18)
    dispatcher.close()
    messages = consume_all(channel, queue)
    by_id = Counter(properties.message_id for properties, _body in messages)
    assert set(by_id) == set(ids + crashed)  # every event arrived ...
    assert len(messages) == 21 and sorted(by_id.values()).count(2) == 3  # ... the re-sent ones twice: dedup
    properties, body = messages[0]
    assert properties.delivery_mode == 2 and properties.content_type == "application/json"
    assert properties.type == "listing.hold" and properties.headers["Triage-Event-Id"] == properties.message_id
    assert properties.message_id.encode() in body


def test_unroutable_messages_are_refused_not_dropped(
    store_engine: Engine, broker: tuple[pika.BlockingConnection, str]
) -> None:
    _connection, exchange = broker  # no queue bound: the broker returns the mandatory message
    clock = Clock()
    config = rabbit_config(exchange, PORT)
    outbox = make_outbox(store_engine, config, clock)
    (event_id,) = enqueue_holds(store_engine, outbox, 1)
    dispatcher = Dispatcher(outbox, config, clock=clock)
    drain(dispatcher, clock)
    metrics = dispatcher.metrics().subscribers["marketplace"]
    assert (metrics.delivered, metrics.failed, metrics.dead) == (0, 3, 1)
    assert "unroutable" in (metrics.last_error or "")
    assert [d.event_id for d in outbox.dead("marketplace")] == [event_id]
    dispatcher.close()


def test_subscriber_config_renders_routing_keys() -> None:
    config = RabbitMQSubscriber(name="bus", topics=["*"], routing_key="triage.{topic}")
    assert config.routing_key_for("listing.hold") == "triage.listing.hold"
