"""Helpers of the delivery tests (no tests here; the test modules import what they use): an outbox on a fresh
SQLite file, a controllable clock, events to deliver, and a real local webhook receiver that can be down, refuse,
or take events (verifying signatures and deduplicating on the event id, as docs/events.md tells receivers to)."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from delivery.config import DeliveryConfig
from delivery.envelope import SIGNATURE_HEADER, verify_signature
from stores.engine import make_engine
from stores.migrate import upgrade
from stores.outbox import TOPIC_LISTING_HOLD, NewEvent, Outbox
from stores.records import utc_now

SECRET = "whsec_0123456789abcdef0123456789abcdef"


class Clock:
    """Starts at the real time (signatures carry real timestamps); tests move it past back-offs."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def store_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'triage.db'}")
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def make_outbox(engine: Engine, config: DeliveryConfig, clock: Clock) -> Outbox:
    return Outbox(engine, config.subscriptions(), clock=clock)


def enqueue_holds(engine: Engine, outbox: Outbox, count: int, start: int = 0) -> list[str]:
    with engine.begin() as connection:
        return outbox.enqueue_many(connection, [
            NewEvent(TOPIC_LISTING_HOLD, f"L{i}", {"listing_id": f"L{i}", "rules": ["thc-cart-cheap v3"]})
            for i in range(start, start + count)])


class Receiver:
    """A webhook endpoint on 127.0.0.1:<port>. ``refuse`` answers 503 to the next n requests (after reading
    them); ``take_but_fail`` stores the next n events yet answers 500 (so the sender must re-send: duplicates)."""

    def __init__(self, port: int, secret: str = SECRET) -> None:
        self.port = port
        self.secret = secret
        self.refuse = 0
        self.take_but_fail = 0
        self.retry_after: str | None = None
        self.requests = 0
        self.bad_signatures = 0
        self.arrivals: Counter[str] = Counter()  # event id -> requests that carried it and were taken
        self.bodies: dict[str, dict[str, object]] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/triage"

    @property
    def unique(self) -> set[str]:
        return set(self.arrivals)

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.requests += 1
                    if not verify_signature(receiver.secret, self.headers.get(SIGNATURE_HEADER, ""), body):
                        receiver.bad_signatures += 1
                        self._answer(400)
                        return
                    if receiver.refuse > 0:
                        receiver.refuse -= 1
                        self._answer(503, receiver.retry_after)
                        return
                    event = json.loads(body)
                    # dedup on the event id: a repeat is acknowledged, not processed again
                    receiver.arrivals[event["id"]] += 1
                    receiver.bodies.setdefault(event["id"], event)
                    receiver.headers.setdefault(event["id"], dict(self.headers.items()))
                    if receiver.take_but_fail > 0:
                        receiver.take_but_fail -= 1
                        self._answer(500)
                        return
                self._answer(204)

            def _answer(self, status: int, retry_after: str | None = None) -> None:
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # quiet test output
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    instance = Receiver(free_port())
    try:
        yield instance
    finally:
        instance.stop()
