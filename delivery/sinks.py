"""Where events go: the ``Sink`` protocol and the webhook sink (``delivery.factory.make_sink`` picks a sink for a
subscriber's config).

A sink sends a batch and says, per delivery, one of three things:

- delivered: the subscriber took it (HTTP 2xx, a JetStream ack, a RabbitMQ publisher confirm);
- refused: the subscriber answered but did not take it (non-2xx, a read timeout, a nack, an unroutable message).
  The attempt counts; after ``max_attempts`` the delivery is a dead letter;
- unreachable: the subscriber could not be reached (connection refused, DNS, connect timeout, broker down). The
  attempt does not count: the dispatcher pauses the subscriber with back-off and the deliveries wait, so an
  outage of any length dead-letters nothing. A sink stops sending a batch at the first unreachable one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx

from delivery.config import WebhookSubscriber
from delivery.envelope import event_body, event_headers
from stores.outbox import ClaimedDelivery

MAX_ERROR_CHARS = 300
MAX_RETRY_AFTER_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class SendResult:
    delivered: bool
    error: str | None = None
    unreachable: bool = False
    retry_after_seconds: float | None = None  # the subscriber asked to wait (HTTP Retry-After)
    attempted: bool = True  # False: not sent at all (an earlier delivery of the batch found it unreachable)

    @classmethod
    def ok(cls) -> SendResult:
        return cls(delivered=True)

    @classmethod
    def refused(cls, error: str, retry_after_seconds: float | None = None) -> SendResult:
        return cls(delivered=False, error=error[:MAX_ERROR_CHARS], retry_after_seconds=retry_after_seconds)

    @classmethod
    def down(cls, error: str) -> SendResult:
        return cls(delivered=False, error=error[:MAX_ERROR_CHARS], unreachable=True)


def not_attempted(error: str, count: int) -> list[SendResult]:
    return [SendResult(delivered=False, error=f"not attempted: {error}", unreachable=True, attempted=False)] * count


class Sink(Protocol):
    def send(self, deliveries: Sequence[ClaimedDelivery]) -> list[SendResult]:
        """One result per delivery, in order; never raises for a delivery's failure."""
        ...

    def close(self) -> None: ...


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class WebhookSink:
    """POST each event as JSON with the event id, topic, timestamp and signature headers (docs/events.md)."""

    def __init__(self, config: WebhookSubscriber, *, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        timeout = httpx.Timeout(config.timeout_seconds)
        # redirects are not followed: a 3xx is not the receiver taking the event (and could point anywhere)
        self._client = httpx.Client(timeout=timeout, follow_redirects=False, transport=transport,
                                    headers={"user-agent": "marketplace-triage-outbox/1"})

    def send(self, deliveries: Sequence[ClaimedDelivery]) -> list[SendResult]:
        results: list[SendResult] = []
        secret = self.config.secret.get_secret_value()
        for index, delivery in enumerate(deliveries):
            body = event_body(delivery)
            headers = event_headers(delivery, body, secret)
            headers["content-type"] = "application/json"
            headers["idempotency-key"] = delivery.event_id
            try:
                response = self._client.post(str(self.config.url), content=body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
                results.append(SendResult.down(f"{type(error).__name__}: {error}"))
                results.extend(not_attempted("webhook unreachable", len(deliveries) - index - 1))
                return results
            except httpx.HTTPError as error:  # read/write timeouts, protocol errors: it answered badly
                results.append(SendResult.refused(f"{type(error).__name__}: {error}"))
                continue
            if 200 <= response.status_code < 300:
                results.append(SendResult.ok())
            else:
                results.append(SendResult.refused(f"HTTP {response.status_code}: {response.text[:200]}",
                                                  _retry_after(response)))
        return results

    def close(self) -> None:
        self._client.close()
