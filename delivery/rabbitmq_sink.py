"""RabbitMQ sink: publisher confirms, persistent messages, ``message_id`` = event id, ``mandatory`` so a
message no queue is bound for is returned (refused) rather than dropped by the broker."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from delivery.config import RabbitMQSubscriber
from delivery.envelope import event_body, event_headers
from delivery.sinks import SendResult, not_attempted
from stores.outbox import ClaimedDelivery

logger = logging.getLogger(__name__)

PERSISTENT = pika.DeliveryMode.Persistent
_UNREACHABLE = (pika.exceptions.AMQPConnectionError, pika.exceptions.ConnectionClosed,
                pika.exceptions.StreamLostError, pika.exceptions.ChannelWrongStateError, OSError)


class RabbitMQSink:
    def __init__(self, config: RabbitMQSubscriber) -> None:
        self.config = config
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def _connect(self) -> BlockingChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self._drop()
        parameters = pika.URLParameters(self.config.url)
        parameters.connection_attempts = 1  # the dispatcher's back-off decides when to try again
        parameters.socket_timeout = self.config.timeout_seconds
        parameters.stack_timeout = self.config.timeout_seconds
        parameters.blocked_connection_timeout = self.config.timeout_seconds
        self._connection = pika.BlockingConnection(parameters)
        channel = self._connection.channel()
        channel.confirm_delivery()
        if self.config.declare_exchange:
            channel.exchange_declare(self.config.exchange, exchange_type=self.config.exchange_type, durable=True)
        self._channel = channel
        return channel

    def send(self, deliveries: Sequence[ClaimedDelivery]) -> list[SendResult]:
        try:
            channel = self._connect()
        except _UNREACHABLE as error:
            self._drop()
            return [SendResult.down(f"{type(error).__name__}: {error}"),
                    *not_attempted("RabbitMQ unreachable", len(deliveries) - 1)]
        except pika.exceptions.AMQPChannelError as error:  # the broker answered: e.g. exchange type mismatch
            self._drop()
            return [SendResult.refused(f"RabbitMQ: {error!r}")] * len(deliveries)
        secret = self.config.secret.get_secret_value() if self.config.secret is not None else None
        results: list[SendResult] = []
        for index, delivery in enumerate(deliveries):
            body = event_body(delivery)
            properties = pika.BasicProperties(
                message_id=delivery.event_id, delivery_mode=PERSISTENT, content_type="application/json",
                type=delivery.topic, timestamp=int(delivery.created_at.timestamp()),
                headers=event_headers(delivery, body, secret))
            try:
                # blocks until the broker confirms (ack) the message; raises on nack or return
                channel.basic_publish(self.config.exchange, self.config.routing_key_for(delivery.topic), body,
                                      properties=properties, mandatory=True)
            except pika.exceptions.UnroutableError:
                results.append(SendResult.refused("RabbitMQ: unroutable (no queue bound for the routing key)"))
            except pika.exceptions.NackError:
                results.append(SendResult.refused("RabbitMQ: the broker nacked the message"))
            except _UNREACHABLE as error:
                self._drop()
                results.append(SendResult.down(f"{type(error).__name__}: {error}"))
                results.extend(not_attempted("RabbitMQ unreachable", len(deliveries) - index - 1))
                return results
            except pika.exceptions.AMQPChannelError as error:
                self._drop()  # the channel is closed by the broker after a channel error
                results.append(SendResult.refused(f"RabbitMQ: {error!r}"))
                results.extend(not_attempted("RabbitMQ channel closed", len(deliveries) - index - 1))
                return results
            else:
                results.append(SendResult.ok())
        return results

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception as error:  # a broken connection may fail to close in many ways; it is gone anyway
                logger.debug("closing RabbitMQ connection: %s", error)

    def close(self) -> None:
        self._drop()
