"""What a subscriber receives: the event envelope (JSON), its headers and the HMAC-SHA256 signature.

Body (the same bytes on every attempt)::

    {"id": "<event id>", "topic": "listing.hold", "key": "L42", "created_at": "2026-...Z", "payload": {...}}

Signature header, Stripe-style: ``Triage-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``.
``verify_signature`` is the reference a receiver follows (docs/events.md has it as a standalone sample).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from stores.outbox import ClaimedDelivery

SIGNATURE_HEADER = "Triage-Signature"
EVENT_ID_HEADER = "Triage-Event-Id"
TOPIC_HEADER = "Triage-Event-Topic"
TIMESTAMP_HEADER = "Triage-Event-Timestamp"
ATTEMPT_HEADER = "Triage-Delivery-Attempt"
DEFAULT_TOLERANCE_SECONDS = 300


def event_body(delivery: ClaimedDelivery) -> bytes:
    envelope = {
        "id": delivery.event_id,
        "topic": delivery.topic,
        "key": delivery.key,
        "created_at": delivery.created_at.isoformat().replace("+00:00", "Z"),
        "payload": delivery.payload,
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Triage-Signature`` header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_headers(delivery: ClaimedDelivery, body: bytes, secret: str | None,
                  timestamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        EVENT_ID_HEADER: delivery.event_id,
        TOPIC_HEADER: delivery.topic,
        TIMESTAMP_HEADER: str(stamp),
        ATTEMPT_HEADER: str(delivery.attempt),
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = signature(secret, stamp, body)
    return headers


def verify_signature(secrets: str | list[str], header: str, body: bytes, *,
                     tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> bool:
    """True when ``header`` signs ``body`` with one of ``secrets`` (several during a rotation) and its timestamp
    is within ``tolerance_seconds`` of ``now`` (a replayed old request fails). Constant-time comparison."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(name, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    candidates = parts.get("v1", [])
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        expected = signature(secret, timestamp, body).split("v1=", 1)[1]
        if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            return True
    return False

