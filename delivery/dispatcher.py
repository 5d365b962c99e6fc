"""The dispatcher: claims due outbox deliveries for each subscriber, sends them through its sink and records the
outcome. One background thread per process (``start``/``stop``), or ``run_once`` / ``run(until)`` in the
caller's thread (tests, a CLI command).

Guarantees (docs/events.md): at least once per subscriber; a subscriber deduplicates on the event id. A delivery
is marked delivered only after its sink says the subscriber took it; a crash between the two re-sends it once
the claim's lease ends. Refused attempts back off per the subscriber's retry policy (or its ``Retry-After``) and
dead-letter after ``max_attempts``; an unreachable subscriber is paused with back-off and its deliveries are
given back unattempted.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from delivery.config import DeliveryConfig, SubscriberConfig
from delivery.factory import make_sink
from delivery.sinks import SendResult, Sink
from stores.outbox import ClaimedDelivery, DeliveryStatus, Outbox
from stores.records import utc_now

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SubscriberMetrics:
    """One subscriber: the store's backlog now, and this process's counters since it started."""

    name: str
    kind: str
    pending: int = 0
    retrying: int = 0
    dead: int = 0
    delivered: int = 0  # delivered by this process
    failed: int = 0  # refused attempts by this process (each backs off or dead-letters)
    dead_lettered: int = 0  # of which were the last attempt
    unreachable: int = 0  # passes that found the subscriber unreachable
    paused_until: datetime | None = None
    last_error: str | None = None
    last_delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryMetrics:
    subscribers: dict[str, SubscriberMetrics]
    running: bool


@dataclass(slots=True)
class _State:
    metrics: SubscriberMetrics
    consecutive_unreachable: int = 0
    sink: Sink | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Dispatcher:
    """Delivers the outbox's events to the configured subscribers."""

    def __init__(
        self,
        outbox: Outbox,
        config: DeliveryConfig,
        *,
        sink_factory: Callable[[SubscriberConfig], Sink] = make_sink,
        clock: Callable[[], datetime] = utc_now,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        configured = {s.name for s in config.subscribers}
        if set(outbox.subscriptions) != configured:
            raise ValueError(f"the outbox's subscribers {sorted(outbox.subscriptions)} are not the configured "
                             f"{sorted(configured)}: build the Outbox from DeliveryConfig.subscriptions()")
        self.outbox = outbox
        self.config = config
        self._sink_factory = sink_factory
        self._clock = clock
        self._uniform = uniform
        self._subscribers: Mapping[str, SubscriberConfig] = {s.name: s for s in config.subscribers}
        self._states = {s.name: _State(SubscriberMetrics(name=s.name, kind=s.kind)) for s in config.subscribers}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- running -----------------------------------------------------------------------------------------------

    def run_once(self) -> int:
        """One pass over every subscriber (one claimed batch each); returns the deliveries settled."""
        settled = 0
        for name in self._subscribers:
            if self._stop.is_set():
                break
            settled += self._dispatch(name)
        return settled

    def run(self, until: datetime | Callable[[], bool] | None = None) -> None:
        """Pass after pass until ``until`` (a time, or a predicate that becomes true) or ``stop()``; waits
        ``poll_seconds`` after a pass that found nothing to do."""
        def finished() -> bool:
            if self._stop.is_set():
                return True
            if until is None:
                return False
            return self._clock() >= until if isinstance(until, datetime) else until()

        try:
            while not finished():
                if self.run_once() == 0:
                    self._stop.wait(self.config.poll_seconds)
        finally:
            self._close_sinks()

    def start(self) -> None:
        """Run in one background (daemon) thread until ``stop()``."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the dispatcher is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_logged, name="outbox-dispatcher", daemon=True)
        self._thread.start()

    def _run_logged(self) -> None:
        while not self._stop.is_set():
            try:
                self.run()
            except Exception:  # a store outage or a bug must not end delivery for the process: log, wait, go on
                logger.exception("outbox dispatcher pass failed; retrying in %s s", self.config.poll_seconds)
                self._stop.wait(self.config.poll_seconds)

    def stop(self, timeout: float = 30.0) -> bool:
        """Ask the thread to stop after its current send; True when it has stopped within ``timeout``."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            self._close_sinks()
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def close(self) -> None:
        """Close the sinks' connections (after ``run_once`` calls; ``run`` and ``stop`` do it themselves)."""
        self._close_sinks()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- one subscriber --------------------------------------------------------------------------------------

    def _dispatch(self, name: str) -> int:
        state = self._states[name]
        now = self._clock()
        paused_until = state.metrics.paused_until
        if paused_until is not None and now < paused_until:
            return 0
        claims = self.outbox.claim_due(name, self.config.batch_size, self.config.lease_seconds)
        if not claims:
            return 0
        if self._stop.is_set():
            self.outbox.release(claims)
            return 0
        results = self._send(name, state, claims)
        delivered = [c for c, r in zip(claims, results, strict=True) if r.delivered]
        unreachable = [c for c, r in zip(claims, results, strict=True) if r.unreachable]
        refused = [(c, r) for c, r in zip(claims, results, strict=True) if not r.delivered and not r.unreachable]
        self.outbox.mark_delivered(delivered)
        retry = self._subscribers[name].retry
        dead = 0
        for claim, result in refused:
            wait = retry.backoff_seconds(claim.attempt, self._uniform)
            if result.retry_after_seconds is not None:
                wait = max(wait, result.retry_after_seconds)
            status = self.outbox.mark_failed(claim, result.error or "refused", self._clock() + timedelta(seconds=wait))
            dead += status is DeliveryStatus.DEAD
            if status is DeliveryStatus.DEAD:
                logger.error("outbox event %s to %s is a dead letter after %d attempts: %s", claim.event_id, name,
                             claim.attempt, result.error)
        if unreachable:
            self.outbox.release(unreachable)
            state.consecutive_unreachable += 1
            pause = retry.backoff_seconds(state.consecutive_unreachable, self._uniform)
            error = next(r.error for r in results if r.unreachable)
            logger.warning("subscriber %s unreachable (%s); pausing %.1f s", name, error, pause)
            paused: datetime | None = self._clock() + timedelta(seconds=pause)
        else:
            state.consecutive_unreachable = 0
            paused = None
        errors = [r.error for r in results if r.error and r.attempted]
        with state.lock:
            m = state.metrics
            state.metrics = replace(
                m, delivered=m.delivered + len(delivered), failed=m.failed + len(refused),
                dead_lettered=m.dead_lettered + dead, unreachable=m.unreachable + bool(unreachable),
                paused_until=paused, last_error=errors[-1] if errors else m.last_error,
                last_delivered_at=self._clock() if delivered else m.last_delivered_at)
        return len(delivered) + len(refused)

    def _send(self, name: str, state: _State, claims: list[ClaimedDelivery]) -> list[SendResult]:
        try:
            if state.sink is None:
                state.sink = self._sink_factory(self._subscribers[name])
            results = state.sink.send(claims)
            if len(results) != len(claims):
                raise RuntimeError(f"sink returned {len(results)} results for {len(claims)} deliveries")
            return results
        except Exception as error:  # a sink bug: treat the subscriber as unreachable (nothing is lost), recreate it
            logger.exception("sink of subscriber %s failed", name)
            self._close_sink(state)
            return [SendResult.down(f"sink error: {type(error).__name__}: {error}")] * len(claims)

    def _close_sink(self, state: _State) -> None:
        sink, state.sink = state.sink, None
        if sink is not None:
            try:
                sink.close()
            except Exception:  # closing is best effort; the connection is dropped either way
                logger.debug("closing a sink failed", exc_info=True)

    def _close_sinks(self) -> None:
        for state in self._states.values():
            self._close_sink(state)

    # --- metrics -----------------------------------------------------------------------------------------------

    def metrics(self) -> DeliveryMetrics:
        """Per subscriber: pending, retrying, dead (from the store) and this process's counters."""
        out: dict[str, SubscriberMetrics] = {}
        for name, state in self._states.items():
            backlog = self.outbox.backlog(name)
            with state.lock:
                out[name] = replace(state.metrics, pending=backlog.pending, retrying=backlog.retrying,
                                    dead=backlog.dead)
        return DeliveryMetrics(subscribers=out, running=self.running)


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until true or ``timeout`` seconds (for callers of ``start()``: tests, CLI)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
