"""NATS JetStream sink: publish with ``Nats-Msg-Id`` = event id, so JetStream drops a re-sent event within the
stream's duplicate window; the publish ack says the stream stored it. The stream is created when missing.

nats-py is asyncio: the sink keeps its own event loop and runs each batch to completion on it, in the caller's
thread (the dispatcher's), so nothing else shares that loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import ConnectionClosedError, NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import APIError, NotFoundError

from delivery.config import NatsSubscriber
from delivery.envelope import event_body, event_headers
from delivery.sinks import SendResult, not_attempted
from stores.outbox import ClaimedDelivery

logger = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
# errors that mean the server (or the stream's leader) is not there: the event waits, its attempts unchanged
_UNREACHABLE = (ConnectionClosedError, NoServersError, NoRespondersError, NatsTimeoutError, asyncio.TimeoutError,
                OSError)


class NatsSink:
    def __init__(self, config: NatsSubscriber) -> None:
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._client: Client | None = None
        self._js: JetStreamContext | None = None

    def send(self, deliveries: Sequence[ClaimedDelivery]) -> list[SendResult]:
        return self._loop.run_until_complete(self._send(deliveries))

    async def _connect(self) -> JetStreamContext:
        if self._client is not None and self._client.is_connected and self._js is not None:
            return self._js
        await self._drop()

        async def quiet(error: Exception) -> None:  # nats-py logs every connection error loudly by default
            logger.debug("nats subscriber %s: %s", self.config.name, error)

        # No reconnect loop inside the client: the dispatcher's back-off decides when to try again. (nats-py
        # reads max_reconnect_attempts=0 as "no limit" on the initial connect and would retry forever; 1 gives
        # up after two tries per server.) The outer timeout bounds it whatever the client does.
        self._client = await asyncio.wait_for(nats.connect(
            servers=self.config.servers, connect_timeout=self.config.timeout_seconds, allow_reconnect=False,
            max_reconnect_attempts=1, reconnect_time_wait=0.05, error_cb=quiet,
            name=f"triage-outbox-{self.config.name}"), timeout=self.config.timeout_seconds * 3)
        self._js = self._client.jetstream(timeout=self.config.timeout_seconds)
        if self.config.ensure_stream:
            await self._ensure_stream(self._js)
        return self._js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            await js.stream_info(self.config.stream)
            return
        except NotFoundError:
            pass
        await js.add_stream(StreamConfig(name=self.config.stream, subjects=self.config.stream_subjects(),
                                         duplicate_window=self.config.duplicate_window_seconds))

    async def _send(self, deliveries: Sequence[ClaimedDelivery]) -> list[SendResult]:
        try:
            js = await self._connect()
        except _UNREACHABLE as error:
            await self._drop()
            return [SendResult.down(f"{type(error).__name__}: {error}"),
                    *not_attempted("NATS unreachable", len(deliveries) - 1)]
        except APIError as error:  # the server answered: stream creation refused (permissions, config)
            await self._drop()
            return [SendResult.refused(f"JetStream: {error}")] * len(deliveries)
        secret = self.config.secret.get_secret_value() if self.config.secret is not None else None
        results: list[SendResult] = []
        for index, delivery in enumerate(deliveries):
            body = event_body(delivery)
            headers: dict[str, Any] = event_headers(delivery, body, secret)
            headers[MSG_ID_HEADER] = delivery.event_id
            try:
                await js.publish(self.config.subject_for(delivery.topic), body, timeout=self.config.timeout_seconds,
                                 headers=headers)
            except _UNREACHABLE as error:
                await self._drop()
                results.append(SendResult.down(f"{type(error).__name__}: {error}"))
                results.extend(not_attempted("NATS unreachable", len(deliveries) - index - 1))
                return results
            except APIError as error:  # e.g. no stream for the subject, message too large
                results.append(SendResult.refused(f"JetStream: {error}"))
                continue
            results.append(SendResult.ok())  # a PubAck: stored, or recognised as a duplicate of a stored one
        return results

    async def _drop(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            try:
                await client.close()
            except Exception as error:  # closing a broken connection may fail in many ways; it is gone anyway
                logger.debug("closing nats connection: %s", error)

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._drop())
            self._loop.close()
