"""The sink for a subscriber's config: webhooks, NATS JetStream or RabbitMQ."""

from __future__ import annotations

from delivery.config import NatsSubscriber, RabbitMQSubscriber, SubscriberConfig, WebhookSubscriber
from delivery.nats_sink import NatsSink
from delivery.rabbitmq_sink import RabbitMQSink
from delivery.sinks import Sink, WebhookSink


def make_sink(config: SubscriberConfig) -> Sink:
    if isinstance(config, WebhookSubscriber):
        return WebhookSink(config)
    if isinstance(config, NatsSubscriber):
        return NatsSink(config)
    if isinstance(config, RabbitMQSubscriber):
        return RabbitMQSink(config)
    raise ValueError(f"no sink for subscriber kind {type(config).__name__}")
