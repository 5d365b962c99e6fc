"""The service's audit trail, written off the request path.

Every scoring request is audited, so one transaction (one fsync on SQLite) per request would cost more CPU
than the scoring itself: one thread drains what has queued since its last write and writes it in a single
transaction, keeping entries in submission order and stamped with the time of the action. It lingers a
quarter of a second after the first entry of a batch so that a busy worker writes a few large batches rather
than many of one entry.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from stores.audit_log import AuditDraft, AuditLog

log = logging.getLogger("triage.audit")
MAX_ENTRIES_PER_WRITE = 500
LINGER_SECONDS = 0.25


@dataclass
class AuditWriterStats:
    written: int = 0
    dropped: int = 0


class AuditWriter:
    """Queue audit drafts from any thread; a daemon thread writes them in batches.

    A failed write is logged and counted (`stats.dropped`), never raised into a request: the audit must not
    fail scoring. `close()` writes everything queued before it returns (up to `timeout`)."""

    def __init__(self, audit: AuditLog, max_per_write: int = MAX_ENTRIES_PER_WRITE,
                 linger_seconds: float = LINGER_SECONDS) -> None:
        self._audit = audit
        self._max = max_per_write
        self._linger = linger_seconds
        # A list under a lock rather than a queue: a queue wakes the writer thread on every put, and each
        # wake-up takes the GIL from the request thread; here only the first entry after a write wakes it.
        self._lock = threading.Lock()
        self._pending: list[AuditDraft] = []
        self._closing = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._stats_lock = threading.Lock()
        self._stats = AuditWriterStats()

    def start(self) -> None:
        self._thread.start()

    def submit(self, draft: AuditDraft) -> None:
        with self._lock:
            self._pending.append(draft)
            first = len(self._pending) == 1
        if first:
            self._wake.set()

    def stats(self) -> AuditWriterStats:
        with self._stats_lock:
            return AuditWriterStats(self._stats.written, self._stats.dropped)

    def close(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            with self._lock:
                self._closing = True
            self._wake.set()
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                closing = self._closing
            if not closing:
                time.sleep(self._linger)  # let a busy worker's entries gather into one transaction
            with self._lock:
                pending, self._pending = self._pending, []
                closing = self._closing
                self._wake.clear()
            for start in range(0, len(pending), self._max):
                self._write(pending[start:start + self._max])
            if closing:
                return

    def _write(self, batch: list[AuditDraft]) -> None:
        try:
            self._audit.record_many(batch)
        except ValueError:
            if len(batch) > 1:  # one malformed draft must not take the others with it
                for draft in batch:
                    self._write([draft])
                return
            self._count(dropped=1)
            log.warning("an audit entry was malformed and not recorded: %s %s", batch[0].action, batch[0].target)
            return
        except Exception as exc:  # any store failure: counted and logged; scoring goes on
            self._count(dropped=len(batch))
            log.warning("%d audit entries not recorded (%s: %s)", len(batch), type(exc).__name__, _first_line(exc))
            return
        self._count(written=len(batch))

    def _count(self, written: int = 0, dropped: int = 0) -> None:
        with self._stats_lock:
            self._stats.written += written
            self._stats.dropped += dropped


def _first_line(exc: Any) -> str:
    return str(exc).splitlines()[0] if str(exc) else ""
