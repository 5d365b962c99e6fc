"""NATS JetStream delivery against a private ``nats-server -js`` started by the test: events enqueued while the
server is down arrive once it is up, a re-sent event (a dispatcher that died before recording the delivery) is
dropped by JetStream's ``Nats-Msg-Id`` deduplication, and a server restart loses nothing. Skips, saying why, when
the nats-server binary is not installed."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from sqlalchemy.engine import Engine

from delivery.config import DeliveryConfig, NatsSubscriber
from delivery.dispatcher import Dispatcher
from delivery.nats_sink import MSG_ID_HEADER, NatsSink
from tests.test_delivery_helpers import Clock, enqueue_holds, free_port, make_outbox

pytest_plugins = ("tests.test_delivery_helpers",)

NATS_SERVER = shutil.which("nats-server") or ("/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists()
                                              else None)
STREAM = "TRIAGE_TEST_EVENTS"


class NatsServer:
    """A private JetStream server on 127.0.0.1:<port> with its store in <dir>; stop/start keeps the store."""

    def __init__(self, port: int, store_dir: Path, log: Path) -> None:
        self.port, self.store_dir, self.log = port, store_dir, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        assert NATS_SERVER is not None
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store_dir)],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited:\n{self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nats-server not listening after {timeout} s:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    if NATS_SERVER is None:
        pytest.skip("nats-server is not installed (apt-get install nats-server); JetStream delivery is not tested")
    server = NatsServer(free_port(), tmp_path / "jetstream", tmp_path / "nats-server.log")
    try:
        yield server
    finally:
        server.stop()


def nats_config(port: int) -> DeliveryConfig:
    return DeliveryConfig.model_validate({
        "batch_size": 10, "lease_seconds": 30,
        "subscribers": [{"kind": "nats", "name": "marketplace", "topics": ["listing.*"],
                         "servers": [f"nats://127.0.0.1:{port}"], "subject": "triage.test.{topic}",
                         "stream": STREAM, "timeout_seconds": 2,
                         "retry": {"initial_backoff_seconds": 1, "max_backoff_seconds": 5, "jitter": 0}}],
    })


def drain(dispatcher: Dispatcher, clock: Clock, passes: int = 40) -> None:
    for _ in range(passes):
        dispatcher.run_once()
        if dispatcher.metrics().subscribers["marketplace"].pending == 0:
            return
        clock.advance(6)  # past any pause (the cap is 5 s)
        time.sleep(0.05)  # a server that just started may need a moment before JetStream answers


async def read_stream(port: int) -> tuple[int, Counter[str]]:
    """How many messages the stream holds, and each message's Nats-Msg-Id, read by a consumer."""
    client = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        js = client.jetstream()
        info = await js.stream_info(STREAM)
        subscription = await js.pull_subscribe("triage.test.>", durable="test-reader", stream=STREAM)
        seen: Counter[str] = Counter()
        while True:
            try:
                messages = await subscription.fetch(50, timeout=1)
            except TimeoutError:
                # nats-py's own TimeoutError, or (a deadline running out between its two requests on a loaded
                # machine) a bare asyncio.TimeoutError, which is the builtin: either means "no more messages"
                break
            for message in messages:
                seen[(message.headers or {})[MSG_ID_HEADER]] += 1
                await message.ack()
        return int(info.state.messages), seen
    finally:
        await client.close()


def test_events_published_while_nats_is_down_arrive_once(store_engine: Engine, nats_server: NatsServer) -> None:
    clock = Clock()
    config = nats_config(nats_server.port)
    outbox = make_outbox(store_engine, config, clock)
    dispatcher = Dispatcher(outbox, config, clock=clock)
    first = enqueue_holds(store_engine, outbox, 20)
    # 1. the server is not running: nothing is delivered, nothing counts as an attempt
    assert dispatcher.run_once() == 0
    down = dispatcher.metrics().subscribers["marketplace"]
    assert (down.pending, down.retrying, down.unreachable, down.delivered) == (20, 0, 1, 0)
    # 2. it starts (an empty store: the sink creates the stream)
    nats_server.start()
    clock.advance(6)
    drain(dispatcher, clock)
    assert dispatcher.metrics().subscribers["marketplace"].delivered == 20
    # 3. a dispatcher publishes five events and dies before recording it: they are sent again after the lease
    crashed = enqueue_holds(store_engine, outbox, 5, start=20)
    claims = outbox.claim_due("marketplace", limit=10, lease_seconds=30)
    assert [c.event_id for c in claims] == crashed
    subscriber = config.subscribers[0]
    assert isinstance(subscriber, NatsSubscriber)
    other = NatsSink(subscriber)
    try:
        assert all(r.delivered for r in other.send(claims))
    finally:
        other.close()
    clock.advance(31)
    drain(dispatcher, clock)
    # 4. the server stops; more events wait; it restarts on the same store
    nats_server.stop()
    during = enqueue_holds(store_engine, outbox, 10, start=25)
    assert dispatcher.run_once() == 0
    assert dispatcher.metrics().subscribers["marketplace"].pending == 10
    nats_server.start()
    clock.advance(6)
    drain(dispatcher, clock)
    final = dispatcher.metrics().subscribers["marketplace"]
    assert (final.pending, final.retrying, final.dead) == (0, 0, 0)
    assert final.delivered == 35 and final.unreachable >= 2
    dispatcher.close()
    # every event is in the stream exactly once, although 40 publishes were acknowledged
    stored, seen = asyncio.run(read_stream(nats_server.port))
    assert stored == 35
    assert set(seen) == set(first + crashed + during) and set(seen.values()) == {1}
