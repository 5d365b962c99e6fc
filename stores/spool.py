"""Append-only local JSONL spool for score records the database could not take (yet).

Records are written to numbered segment files, each append followed by an fsync, so a record the spool
accepted survives a crash. The writer replays closed segments oldest first once the store is back and
deletes a segment only after all its rows are committed. Folders are created 0700 and files 0600: the rows
are scores and feature vectors. Lines that cannot be decoded are moved to a
``rejected.jsonl`` dead-letter file rather than discarded.

One process per spool directory: an exclusive ``flock`` on ``LOCK`` is held for the spool's lifetime,
so two service workers pointed at the same directory fail at start-up instead of replaying (and deleting)
each other's segments. A stopped worker's folder is taken over by a new worker (``adopt_orphaned_spools``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from stores.engine import open_private, private_dir
from stores.records import ScoreRecord

logger = logging.getLogger(__name__)

SEGMENT_GLOB = "segment-*.jsonl"
REJECTED_FILE = "rejected.jsonl"
LOCK_FILE = "LOCK"
WORKER_PREFIX = "worker-"


class SpoolLockedError(RuntimeError):
    """Another process (or another writer in this process) already owns the spool directory."""


@dataclass(frozen=True, slots=True)
class ReplayBatch:
    """Decoded records from a segment, the undecodable lines among them, and where the batch ends."""

    records: list[ScoreRecord]
    bad_lines: list[str]
    end_line: int
    # The last batch of the segment (possibly empty); replaying it completes the segment.
    is_last: bool


class ScoreSpool:
    """Thread-safe segment files in ``directory``; see the module docstring."""

    def __init__(self, directory: Path, *, segment_max_rows: int = 10_000) -> None:
        if segment_max_rows < 1:
            raise ValueError("segment_max_rows must be at least 1")
        self.directory = directory
        self._segment_max_rows = segment_max_rows
        self._lock = threading.Lock()
        private_dir(directory)
        self._lock_file = self._acquire_directory_lock(directory / LOCK_FILE)
        self._active: IO[str] | None = None
        self._active_path: Path | None = None
        self._sequence = 0
        # segment path -> (lines in the file, lines already replayed into the store)
        self._segments: dict[Path, tuple[int, int]] = {}
        for path in sorted(directory.glob(SEGMENT_GLOB)):
            self._segments[path] = (_count_lines(path), 0)
        if self._segments:
            logger.warning(
                "spool %s holds %d rows from a previous run; they will be replayed",
                directory,
                self.pending_rows,
            )

    @staticmethod
    def _acquire_directory_lock(path: Path) -> IO[str]:
        handle = open_private(path)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            handle.close()
            raise SpoolLockedError(f"spool directory {path.parent} is in use by another writer") from error
        return handle

    @property
    def pending_rows(self) -> int:
        """Rows spooled and not yet replayed into the store."""
        with self._lock:
            return sum(total - replayed for total, replayed in self._segments.values())

    def append(self, records: Sequence[ScoreRecord]) -> None:
        """Append and fsync; raises ``OSError`` if the rows may not be on disk."""
        if not records:
            return
        payload = "".join(record.to_json_line() + "\n" for record in records)
        with self._lock:
            handle, path = self._active_segment()
            try:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError:
                # The file may now end in a torn line; start a fresh segment for later appends.
                self._close_active()
                raise
            total, replayed = self._segments[path]
            self._segments[path] = (total + len(records), replayed)
            if total + len(records) >= self._segment_max_rows:
                self._close_active()

    def _active_segment(self) -> tuple[IO[str], Path]:
        if self._active is None or self._active_path is None:
            self._sequence += 1
            path = self.directory / f"segment-{time.time_ns():020d}-{self._sequence:06d}.jsonl"
            self._active = open_private(path)
            self._active_path = path
            self._segments[path] = (0, 0)
            _fsync_directory(self.directory)
        return self._active, self._active_path

    def _close_active(self) -> None:
        if self._active is not None:
            self._active.close()
        self._active = None
        self._active_path = None

    def oldest_segment(self) -> Path | None:
        """The oldest segment with rows left to replay, closing the active one if it is the only one."""
        with self._lock:
            closed = [path for path in self._segments if path != self._active_path]
            if not closed and self._active_path is not None and self._segments[self._active_path][0] > 0:
                self._close_active()
                closed = list(self._segments)
            return min(closed, default=None)

    def read_batches(self, segment: Path, batch_size: int) -> Generator[ReplayBatch, None, None]:
        """Yield the not-yet-replayed lines of a closed segment in batches."""
        with self._lock:
            start_line = self._segments[segment][1]
        records: list[ScoreRecord] = []
        bad_lines: list[str] = []
        line_number = 0
        with segment.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if line_number <= start_line or not line.strip():
                    continue
                try:
                    records.append(ScoreRecord.from_json_line(line))
                except (ValueError, KeyError, TypeError) as error:
                    logger.error("undecodable line %d in spool segment %s: %s", line_number, segment, error)
                    bad_lines.append(line.rstrip("\n"))
                if len(records) + len(bad_lines) >= batch_size:
                    yield ReplayBatch(records, bad_lines, line_number, is_last=False)
                    records, bad_lines = [], []
        yield ReplayBatch(records, bad_lines, max(line_number, start_line), is_last=True)

    def mark_replayed(self, batch: ReplayBatch, segment: Path) -> None:
        """Record that ``batch`` is in the store; delete the segment after its last batch."""
        with self._lock:
            total, _ = self._segments[segment]
            if not batch.is_last:
                self._segments[segment] = (total, batch.end_line)
                return
            del self._segments[segment]
        segment.unlink()
        _fsync_directory(self.directory)

    def reject(self, lines: Sequence[str]) -> None:
        """Keep lines the store refused (or that cannot be decoded) for a human; never replayed."""
        if not lines:
            return
        with self._lock, open_private(self.directory / REJECTED_FILE) as handle:
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        with self._lock:
            self._close_active()
            if not self._lock_file.closed:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
                self._lock_file.close()


def _count_lines(path: Path) -> int:
    with path.open(encoding="utf-8", errors="replace") as handle:
        return sum(1 for _ in handle)


def _fsync_directory(directory: Path) -> None:
    """Make a created or deleted file name itself durable, not only the file's contents."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def worker_spool_dir(root: Path, pid: int) -> Path:
    """The spool folder of one service worker process."""
    return root / f"{WORKER_PREFIX}{pid}"


def adopt_orphaned_spools(root: Path, into: Path) -> int:
    """Move the segments of every spool folder under ``root`` that no live writer holds into ``into`` (call it
    before opening ``into``'s spool, which then replays them); returns the rows moved.

    Worker folders are named by process id, so after a restart no new worker would ever open a stopped
    worker's folder again and its spooled rows would never reach the store. A folder is only taken when its
    lock can be taken; it is removed only when its worker process no longer exists, because a worker that is
    just starting may not have locked its folder yet.
    """
    private_dir(into)
    moved = 0
    for folder in sorted(root.glob(f"{WORKER_PREFIX}*")):
        if folder.resolve() == into.resolve() or not (folder / LOCK_FILE).is_file():
            continue
        try:
            handle = ScoreSpool._acquire_directory_lock(folder / LOCK_FILE)
        except SpoolLockedError:
            continue  # a live writer's
        try:
            for segment in sorted(folder.glob(SEGMENT_GLOB)):
                target = into / segment.name
                if target.exists():
                    target = into / f"{segment.stem}-{folder.name}.jsonl"
                moved += _count_lines(segment)
                segment.rename(target)
            rejected = folder / REJECTED_FILE
            if rejected.exists():
                rejected.rename(into / f"rejected-from-{folder.name}.jsonl")
            _fsync_directory(into)
            _fsync_directory(folder)
            if not _process_exists(folder.name.removeprefix(WORKER_PREFIX)):
                (folder / LOCK_FILE).unlink()
                with contextlib.suppress(OSError):  # something else is in it: leave it for a human
                    folder.rmdir()
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
    if moved:
        logger.warning("adopted %d spooled score rows from stopped workers' spools under %s", moved, root)
    return moved


def _process_exists(pid_text: str) -> bool:
    if not pid_text.isdigit():
        return True  # not a worker folder this module named: never remove it
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
