"""Subscribers of outbox events as configuration data: who receives which topics, where, signed with what, and
how failed deliveries are retried. Loads from a dict or a JSON file (``DeliveryConfig.from_file``)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, StringConstraints, model_validator

from stores.outbox import Subscription

Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
TopicPattern = Annotated[str, StringConstraints(min_length=1, max_length=128,
                                                pattern=r"^(?:\*|[a-z0-9_*]+(?:\.[a-z0-9_*]+)*)$")]
# at least 128 bits of a random secret, written as 32 hex digits or more
SigningSecret = Annotated[SecretStr, Field(min_length=32)]


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryPolicy(_Config):
    """Exponential backoff with jitter and a cap; dead letter after ``max_attempts`` refused attempts.

    The n-th retry waits ``min(cap, initial * multiplier ** (n - 1))``, shortened by up to ``jitter`` of itself at
    random so that many deliveries that failed together do not all retry at the same instant.
    """

    max_attempts: int = Field(default=10, ge=1, le=1000)
    initial_backoff_seconds: float = Field(default=1.0, gt=0, le=3600)
    multiplier: float = Field(default=2.0, ge=1, le=10)
    max_backoff_seconds: float = Field(default=300.0, gt=0, le=86_400)
    jitter: float = Field(default=0.2, ge=0, le=1)

    def backoff_seconds(self, attempt: int, uniform: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the ``attempt``-th failure (1 for the first)."""
        exponent = min(max(attempt, 1) - 1, 64)  # bounded: the cap is reached long before
        base = min(self.max_backoff_seconds, self.initial_backoff_seconds * self.multiplier ** exponent)
        return base * (1.0 - self.jitter * uniform())


class _Subscriber(_Config):
    name: Name
    topics: list[TopicPattern] = Field(min_length=1)
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)

    def subscription(self) -> Subscription:
        return Subscription(name=self.name, topics=tuple(self.topics), max_attempts=self.retry.max_attempts)


class WebhookSubscriber(_Subscriber):
    """HTTP POST of each event, signed with HMAC-SHA256 (see docs/events.md); 2xx means delivered."""

    kind: Literal["webhook"] = "webhook"
    url: AnyHttpUrl
    secret: SigningSecret


class NatsSubscriber(_Subscriber):
    """Publish to NATS JetStream with ``Nats-Msg-Id`` = event id (JetStream drops duplicates in its window)."""

    kind: Literal["nats"] = "nats"
    servers: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1, repr=False)
    # ``{topic}`` is replaced by the event's topic: "triage.events.listing.hold"
    subject: str = Field(default="triage.events.{topic}", min_length=1, max_length=255)
    stream: str = Field(default="TRIAGE_EVENTS", pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    ensure_stream: bool = True  # create the stream if it does not exist
    duplicate_window_seconds: float = Field(default=600.0, gt=0, le=7 * 86_400)
    secret: SigningSecret | None = None  # when set, messages also carry the signature header

    def subject_for(self, topic: str) -> str:
        return self.subject.replace("{topic}", topic)

    def stream_subjects(self) -> list[str]:
        head, marker, _tail = self.subject.partition("{topic}")
        return [head + ">" if marker else self.subject]


class RabbitMQSubscriber(_Subscriber):
    """Publish to a RabbitMQ exchange with publisher confirms, persistent messages, ``message_id`` = event id."""

    kind: Literal["rabbitmq"] = "rabbitmq"
    url: str = Field(default="amqp://guest:guest@127.0.0.1:5672/%2F", repr=False)  # may hold a password
    exchange: str = Field(default="triage.events", min_length=1, max_length=255)
    exchange_type: Literal["direct", "topic", "fanout", "headers"] = "topic"
    declare_exchange: bool = True
    routing_key: str = Field(default="{topic}", max_length=255)  # ``{topic}`` is replaced by the event's topic
    secret: SigningSecret | None = None

    def routing_key_for(self, topic: str) -> str:
        return self.routing_key.replace("{topic}", topic)


SubscriberConfig = Annotated[WebhookSubscriber | NatsSubscriber | RabbitMQSubscriber, Field(discriminator="kind")]


class DeliveryConfig(_Config):
    """Every subscriber, and how the dispatcher claims work."""

    subscribers: list[SubscriberConfig] = Field(default_factory=list)
    batch_size: int = Field(default=100, ge=1, le=1000)
    # a claimed delivery not settled within the lease is due again (a dispatcher that died)
    lease_seconds: float = Field(default=120.0, gt=0, le=3600)
    poll_seconds: float = Field(default=1.0, gt=0, le=60)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [s.name for s in self.subscribers]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"subscriber names must be unique; repeated: {duplicated}")
        for subscriber in self.subscribers:
            if subscriber.timeout_seconds * 2 >= self.lease_seconds:
                raise ValueError(f"subscriber {subscriber.name!r}: timeout_seconds must be well under "
                                 f"lease_seconds ({self.lease_seconds}) or a slow send outlives its claim")
        return self

    def subscriptions(self) -> list[Subscription]:
        """What ``stores.outbox.Outbox`` needs: the same list for the writers and the dispatcher."""
        return [s.subscription() for s in self.subscribers]

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
