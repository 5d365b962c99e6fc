"""The scoring log: a non-blocking, spooling writer for served scores and the queries that read them.

Data path: ``submit`` appends to a bounded in-memory queue and returns. A store thread inserts batches
(multi-row statements, ``stores.score_insert``; duplicates by ``id`` ignored so retries are idempotent).
When the store fails, the failed batch and, from then on, the in-memory backlog are moved by a spill thread
to the local spool (``stores.spool``), and the store thread probes with backoff by replaying the spool. A row
is counted as ``dropped`` only if it could neither be stored nor spooled, and that is logged as an error.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from stores.records import (
    ModelAlias,
    ScoreRecord,
    TimeWindow,
    feature_array,
)
from stores.schema import scores
from stores.score_insert import ScoreInsert
from stores.spool import ReplayBatch, ScoreSpool
from triage.entities import check_entity_type

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 500


@dataclass(frozen=True, slots=True)
class ScoringLogMetrics:
    """A consistent snapshot of the writer's counters, for Prometheus gauges elsewhere."""

    backlog: int  # rows waiting in memory
    # Rows taken by a thread and not yet stored or spooled; for a moment a spilled row may be counted both
    # here and in ``spooled`` (the spool is written outside the lock so submit never waits on an fsync).
    in_flight: int
    spooled: int  # rows in the local spool, not yet replayed
    spooled_total: int  # rows ever written to the spool by this writer
    written: int  # rows committed to the store (first inserts and replays)
    dropped: int  # rows lost because neither the store nor the spool took them (each logged)
    rejected: int  # rows the store refused as invalid, kept in the spool's rejected.jsonl
    last_error: str | None
    store_up: bool


class StoreRowError(Exception):
    """The store refused specific rows (constraint or data error): retrying the same rows cannot help."""


class ScoringLogWriter:
    """Background writer for ``ScoreRecord``s; ``submit`` never blocks on, or raises because of, the store.

    Use as a context manager or call ``close()`` at shutdown; rows still in memory are then spooled, and
    the spool is replayed by the next writer that opens the same ``spool_dir``.
    """

    def __init__(
        self,
        engine: Engine,
        spool_dir: Path,
        *,
        batch_size: int = 2_000,
        flush_interval_s: float = 0.2,
        max_backlog: int = 50_000,
        spill_threshold: int | None = None,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
        segment_max_rows: int = 10_000,
    ) -> None:
        if batch_size < 1 or max_backlog < 1:
            raise ValueError("batch_size and max_backlog must be at least 1")
        self._engine = engine
        self._insert = ScoreInsert(engine)
        self._spool = ScoreSpool(spool_dir, segment_max_rows=segment_max_rows)
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_backlog = max_backlog
        # Spill before the hard bound so that submit rarely has to spool on the caller's thread.
        self._spill_threshold = spill_threshold if spill_threshold is not None else max(1, max_backlog // 2)
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._jitter = random.Random()

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[ScoreRecord] = deque()
        self._oldest_enqueued_at = 0.0
        self._in_flight = 0
        self._flush_waiters = 0
        self._store_up = True
        self._retry_delay_s = retry_initial_s
        self._next_attempt_at = 0.0
        self._closing = False
        self._close_deadline = 0.0
        self._spill_stop = False
        self._written = 0
        self._spooled_total = 0
        self._dropped = 0
        self._rejected = 0
        self._last_error: str | None = None

        self._store_thread = threading.Thread(target=self._run_store, name="scoring-log-store", daemon=True)
        self._spill_thread = threading.Thread(target=self._run_spill, name="scoring-log-spill", daemon=True)
        self._store_thread.start()
        self._spill_thread.start()

    # ----------------------------------------------------------------------------------------- public

    def submit(self, records: Iterable[ScoreRecord]) -> None:
        """Queue records for storage; O(len(records)) and lock-brief on the normal path.

        Only if the in-memory backlog is at its bound (the spill thread is not keeping up) are the
        excess rows spooled on the caller's thread: a local append + fsync, never a database call.
        """
        batch = list(records)
        if not batch:
            return
        with self._lock:
            closing = self._closing
            room = 0 if closing else max(0, self._max_backlog - len(self._queue))
            accepted, overflow = batch[:room], batch[room:]
            if accepted:
                was_empty = not self._queue
                if was_empty:
                    self._oldest_enqueued_at = time.monotonic()
                self._queue.extend(accepted)
                # Wake the threads only when one has something new to do: every wake-up takes the GIL from the
                # request thread (at one notify per request, ~23 futex calls per request were measured).
                # Between those, the store thread's own flush-interval timeout picks the rows up.
                if was_empty or len(self._queue) >= self._batch_size or self._should_spill_locked():
                    self._changed.notify_all()
            self._in_flight += len(overflow)
        if not overflow:
            return
        if closing:
            # The spool is being closed too; a caller racing shutdown is told loudly, not silently.
            self._count_dropped(overflow, "submit after close()")
        else:
            self._spill(overflow)

    def flush(self, timeout: float) -> bool:
        """Wait until every submitted row is in the store; False if that did not happen within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._flush_waiters += 1
            self._changed.notify_all()
            try:
                while not self._all_stored_locked():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._changed.wait(min(remaining, 0.05))
                return True
            finally:
                self._flush_waiters -= 1

    def close(self, timeout: float = 10.0) -> None:
        """Drain the memory backlog to the store for up to ``timeout`` seconds (not at all if the store
        is down), spool whatever is left, stop the threads. Rows already in the spool stay there for the
        next writer on the same ``spool_dir``."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._close_deadline = time.monotonic() + timeout
            self._changed.notify_all()
        self._store_thread.join(timeout + 1.0)
        if self._store_thread.is_alive():
            logger.error("scoring log store thread still busy after %.1fs; its in-flight batch may be lost", timeout)
        with self._lock:
            self._spill_stop = True
            self._changed.notify_all()
        self._spill_thread.join()
        self._spool.close()

    def __enter__(self) -> ScoringLogWriter:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()

    def metrics(self) -> ScoringLogMetrics:
        with self._lock:
            return ScoringLogMetrics(
                backlog=len(self._queue),
                in_flight=self._in_flight,
                spooled=self._spool.pending_rows,
                spooled_total=self._spooled_total,
                written=self._written,
                dropped=self._dropped,
                rejected=self._rejected,
                last_error=self._last_error,
                store_up=self._store_up,
            )

    @property
    def backlog(self) -> int:
        return self.metrics().backlog

    @property
    def spooled(self) -> int:
        return self.metrics().spooled

    @property
    def written(self) -> int:
        return self.metrics().written

    @property
    def dropped(self) -> int:
        return self.metrics().dropped

    @property
    def last_error(self) -> str | None:
        return self.metrics().last_error

    @property
    def store_up(self) -> bool:
        return self.metrics().store_up

    # ----------------------------------------------------------------------------------- store thread

    def _all_stored_locked(self) -> bool:
        return not self._queue and self._in_flight == 0 and self._spool.pending_rows == 0

    def _run_store(self) -> None:
        while True:
            work = self._next_store_work()
            if work is None:
                return
            try:
                if isinstance(work, Path):
                    self._replay_segment(work)
                else:
                    self._store_batch(work)
            except Exception as error:
                # Not a database error, so a bug: log it with its traceback, keep the rows (a replayed
                # segment stays on disk; a memory batch is spooled) and keep the thread alive, since a dead
                # writer thread would lose every later row.
                logger.exception("scoring log store thread: unexpected error")
                self._mark_store_down(error)
                if isinstance(work, list):
                    self._spill(work)

    def _next_store_work(self) -> Path | list[ScoreRecord] | None:
        """Block until there is a segment to replay or a batch to insert; None when closing is done."""
        with self._lock:
            while True:
                now = time.monotonic()
                # At close only the memory backlog matters: spooled rows are already durable and are
                # replayed by the next writer on this spool directory, and a down store is not waited
                # for (the spill thread spools the backlog instead).
                if self._closing and (now >= self._close_deadline or not self._queue or not self._store_up):
                    return None
                pending_spool = not self._closing and self._spool.pending_rows > 0
                retry_in = self._next_attempt_at - now
                if retry_in > 0:
                    if self._closing:
                        retry_in = min(retry_in, self._close_deadline - now)
                    self._changed.wait(retry_in)
                    continue
                wait_s: float | None
                if pending_spool:
                    segment = self._spool.oldest_segment()
                    if segment is not None:
                        return segment
                if self._queue:
                    age = now - self._oldest_enqueued_at
                    urgent = self._closing or self._flush_waiters > 0 or len(self._queue) >= self._batch_size
                    if urgent or age >= self._flush_interval_s:
                        return self._take_locked(self._batch_size)
                    wait_s = self._flush_interval_s - age
                else:
                    wait_s = None
                if self._closing:
                    wait_s = min(wait_s if wait_s is not None else 0.05, self._close_deadline - now)
                self._changed.wait(wait_s)

    def _take_locked(self, limit: int) -> list[ScoreRecord]:
        count = min(limit, len(self._queue))
        batch = [self._queue.popleft() for _ in range(count)]
        self._in_flight += count
        self._oldest_enqueued_at = time.monotonic()
        return batch

    def _store_batch(self, batch: list[ScoreRecord]) -> None:
        try:
            stored = self._insert_checked(batch)
        except sa.exc.SQLAlchemyError as error:
            self._mark_store_down(error)
            self._spill(batch)
            return
        with self._lock:
            self._written += stored
            self._in_flight -= len(batch)
            # In the same critical section as the counts, so flush() never sees "all stored" but "down".
            was_down = self._mark_store_up_locked()
        if was_down:
            logger.info("scoring log store is back")

    def _replay_segment(self, segment: Path) -> None:
        replayed = 0
        # closing() so that abandoning a segment half-way closes its file at once.
        with contextlib.closing(self._spool.read_batches(segment, self._batch_size)) as batches:
            for batch in batches:
                try:
                    stored = self._insert_checked(batch.records)
                except sa.exc.SQLAlchemyError as error:
                    # The segment stays; the next attempt resumes after the last committed batch.
                    self._mark_store_down(error)
                    return
                self._reject_lines(batch.bad_lines, "undecodable spool line")
                if self._finish_replay_batch(batch, segment, stored):
                    logger.info("scoring log store is back; replaying the spool")
                replayed += stored
        logger.info("replayed %d spooled score rows from %s", replayed, segment.name)

    def _finish_replay_batch(self, batch: ReplayBatch, segment: Path, stored: int) -> bool:
        with self._lock:
            self._spool.mark_replayed(batch, segment)
            self._written += stored
            return self._mark_store_up_locked()

    def _insert_checked(self, batch: Sequence[ScoreRecord]) -> int:
        """Insert ``batch`` and return how many rows were stored; rows the store refuses as invalid are
        isolated and rejected, not retried.

        Raises ``SQLAlchemyError`` for store failures (connection, locks, missing tables, ...).
        """
        if not batch:
            return 0
        try:
            self._insert_rows(batch)
        except (sa.exc.IntegrityError, sa.exc.DataError):
            # Some row is invalid for the store; find which by inserting one at a time.
            stored = 0
            for record in batch:
                try:
                    self._insert_rows([record])
                except (sa.exc.IntegrityError, sa.exc.DataError) as row_error:
                    self._reject_lines([record.to_json_line()], _describe(row_error))
                else:
                    stored += 1
            return stored
        return len(batch)

    def _insert_rows(self, batch: Sequence[ScoreRecord]) -> None:
        with self._engine.begin() as connection:
            self._insert.insert(connection, batch)

    def _reject_lines(self, lines: Sequence[str], reason: str) -> None:
        if not lines:
            return
        logger.error("scoring log rejected %d row(s): %s", len(lines), reason)
        try:
            self._spool.reject(lines)
        except OSError as error:
            logger.error("could not keep %d rejected row(s) in the spool: %s", len(lines), error)
        with self._lock:
            self._rejected += len(lines)
            self._last_error = reason

    def _mark_store_down(self, error: BaseException) -> None:
        with self._lock:
            was_up = self._store_up
            self._store_up = False
            self._last_error = _describe(error)
            # Full jitter around the current delay so many workers do not retry in lockstep.
            delay = self._retry_delay_s * (0.5 + self._jitter.random() / 2)
            self._next_attempt_at = time.monotonic() + delay
            self._retry_delay_s = min(self._retry_delay_s * 2, self._retry_max_s)
            self._changed.notify_all()
        if was_up:
            logger.error("scoring log store unavailable, spooling locally: %s", _describe(error))
        else:
            logger.debug("scoring log store still unavailable: %s", _describe(error))

    def _mark_store_up_locked(self) -> bool:
        """Record a successful write; returns whether the store was down until now."""
        was_down = not self._store_up
        self._store_up = True
        self._retry_delay_s = self._retry_initial_s
        self._next_attempt_at = 0.0
        self._changed.notify_all()
        return was_down

    # ----------------------------------------------------------------------------------- spill thread

    def _run_spill(self) -> None:
        while True:
            with self._lock:
                while not self._should_spill_locked() and not (self._spill_stop and not self._queue):
                    self._changed.wait()
                if not self._queue:
                    return
                batch = self._take_locked(self._batch_size * 10)
            self._spill(batch)

    def _should_spill_locked(self) -> bool:
        if not self._queue:
            return False
        return self._spill_stop or not self._store_up or len(self._queue) >= self._spill_threshold

    def _spill(self, batch: list[ScoreRecord]) -> None:
        """Move in-flight rows to the spool; count and log them as dropped if even that fails."""
        try:
            self._spool.append(batch)
        except OSError as error:
            self._count_dropped(batch, f"spool write failed: {error}")
            return
        with self._lock:
            self._spooled_total += len(batch)
            self._in_flight -= len(batch)
            self._changed.notify_all()

    def _count_dropped(self, batch: list[ScoreRecord], reason: str) -> None:
        logger.error("scoring log dropped %d row(s): %s", len(batch), reason)
        with self._lock:
            self._dropped += len(batch)
            self._in_flight -= len(batch)
            self._last_error = reason
            self._changed.notify_all()


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text[:MAX_ERROR_LENGTH]


@dataclass(frozen=True, slots=True)
class FeatureMatrix:
    """Feature vectors of scored entities, row-aligned arrays."""

    score_ids: npt.NDArray[np.object_]
    entity_ids: npt.NDArray[np.object_]
    scored_at: npt.NDArray[np.datetime64]  # UTC, microseconds
    features: npt.NDArray[np.float64]  # shape (rows, features); NaN where the value was missing
    feature_names_hashes: tuple[str, ...]


class ScoringLogReader:
    """Queries over the ``scores`` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def scores_in_window(
        self,
        window: TimeWindow,
        *,
        entity_type: str | None = None,
        model_name: str | None = None,
        model_alias: ModelAlias | None = None,
        served: bool | None = None,
        limit: int | None = None,
    ) -> list[ScoreRecord]:
        """Scores with ``window.start <= scored_at < window.end``, oldest first."""
        query = (
            sa.select(scores)
            .where(*_score_filters(entity_type, model_name, model_alias, served))
            .where(scores.c.scored_at >= window.start, scores.c.scored_at < window.end)
            .order_by(scores.c.scored_at, scores.c.id)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [ScoreRecord.from_row(row) for row in connection.execute(query).mappings()]

    def count_scores(self, window: TimeWindow | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(scores)
        if window is not None:
            query = query.where(scores.c.scored_at >= window.start, scores.c.scored_at < window.end)
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def latest_scores(
        self,
        entity_type: str,
        entity_ids: Sequence[str] | None = None,
        *,
        model_name: str | None = None,
        model_alias: ModelAlias | None = None,
        served: bool | None = True,
        as_of: datetime | None = None,
    ) -> dict[str, ScoreRecord]:
        """The most recent score per entity (optionally only for ``entity_ids``, or as of a time).

        Ties on ``scored_at`` prefer the served score, then the larger id, so the answer is stable.
        """
        filters = _score_filters(entity_type, model_name, model_alias, served)
        if as_of is not None:
            filters.append(scores.c.scored_at <= as_of)
        id_chunks: list[Sequence[str] | None] = [None]
        if entity_ids is not None:
            # Bounded IN lists: SQLite caps bound parameters per statement.
            id_chunks = [entity_ids[start : start + 500] for start in range(0, len(entity_ids), 500)]
        latest: dict[str, ScoreRecord] = {}
        with self._engine.connect() as connection:
            for chunk in id_chunks:
                chunk_filters = list(filters)
                if chunk is not None:
                    chunk_filters.append(scores.c.entity_id.in_(chunk))
                rank = (
                    sa.func.row_number()
                    .over(
                        partition_by=scores.c.entity_id,
                        order_by=(scores.c.scored_at.desc(), scores.c.served.desc(), scores.c.id.desc()),
                    )
                    .label("recency_rank")
                )
                ranked = sa.select(scores, rank).where(*chunk_filters).subquery()
                query = sa.select(ranked).where(ranked.c.recency_rank == 1)
                for row in connection.execute(query).mappings():
                    record = ScoreRecord.from_row(row)
                    latest[record.entity_id] = record
        return latest

    def feature_matrix(
        self,
        entity_type: str,
        window: TimeWindow,
        *,
        model_name: str | None = None,
        model_alias: ModelAlias | None = None,
        served: bool | None = True,
        feature_names_hash: str | None = None,
    ) -> FeatureMatrix:
        """Feature vectors scored in ``window`` as a 2-D array, oldest first.

        ``served=True`` by default so an entity scored by champion and challenger appears once.
        Raises ``ValueError`` if the vectors have different lengths (mixed feature schemas): pass
        ``feature_names_hash`` to select one.
        """
        query = (
            sa.select(scores)
            .where(*_score_filters(entity_type, model_name, model_alias, served))
            .where(scores.c.scored_at >= window.start, scores.c.scored_at < window.end)
            .order_by(scores.c.scored_at, scores.c.id)
        )
        if feature_names_hash is not None:
            query = query.where(scores.c.feature_names_hash == feature_names_hash)
        with self._engine.connect() as connection:
            records = [ScoreRecord.from_row(row) for row in connection.execute(query).mappings()]
        return FeatureMatrix(
            score_ids=np.array([record.id for record in records], dtype=object),
            entity_ids=np.array([record.entity_id for record in records], dtype=object),
            scored_at=np.array([record.scored_at.replace(tzinfo=None) for record in records], dtype="datetime64[us]"),
            features=feature_array(records),
            feature_names_hashes=tuple(sorted({record.feature_names_hash for record in records})),
        )


def _score_filters(
    entity_type: str | None,
    model_name: str | None,
    model_alias: ModelAlias | None,
    served: bool | None,
) -> list[sa.ColumnElement[bool]]:
    filters: list[sa.ColumnElement[bool]] = []
    if entity_type is not None:
        filters.append(scores.c.entity_type == check_entity_type(entity_type))
    if model_name is not None:
        filters.append(scores.c.model_name == model_name)
    if model_alias is not None:
        filters.append(scores.c.model_alias == ModelAlias(model_alias).value)
    if served is not None:
        filters.append(scores.c.served == served)
    return filters
