"""Delivery of outbox events (``stores.outbox``) to the marketplace and other subscribers.

Above ``stores`` in the layering; imports neither ``serving``, ``training`` nor the CLI.

- ``delivery.config``: ``DeliveryConfig`` and the subscriber kinds (``webhook``, ``nats``, ``rabbitmq``) with
  their retry policy, as data.
- ``delivery.envelope``: the event body, headers, and the HMAC-SHA256 signature (``verify_signature`` is the
  receiver's reference).
- ``delivery.sinks``: the ``Sink`` protocol and the webhook sink; ``delivery.nats_sink`` (JetStream) and
  ``delivery.rabbitmq_sink`` (publisher confirms); ``delivery.factory.make_sink`` picks one for a subscriber.
- ``delivery.dispatcher``: ``Dispatcher`` (one background thread, ``run_once``, ``run(until)``) and its metrics.
"""

from delivery.config import DeliveryConfig, NatsSubscriber, RabbitMQSubscriber, RetryPolicy, WebhookSubscriber
from delivery.dispatcher import DeliveryMetrics, Dispatcher, SubscriberMetrics
from delivery.envelope import event_body, signature, verify_signature
from delivery.factory import make_sink
from delivery.sinks import SendResult, Sink, WebhookSink

__all__ = [
    "DeliveryConfig",
    "DeliveryMetrics",
    "Dispatcher",
    "NatsSubscriber",
    "RabbitMQSubscriber",
    "RetryPolicy",
    "SendResult",
    "Sink",
    "SubscriberMetrics",
    "WebhookSink",
    "WebhookSubscriber",
    "event_body",
    "make_sink",
    "signature",
    "verify_signature",
]
