"""Rows a stopped worker left in its spool reach the store through the next worker (folders are named by
process id, so nobody would open the old folder again)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import Engine

from stores.scoring_log import ScoringLogReader, ScoringLogWriter
from stores.spool import LOCK_FILE, REJECTED_FILE, SEGMENT_GLOB, ScoreSpool, adopt_orphaned_spools, worker_spool_dir
from tests.conftest_stores import make_scores

pytest_plugins = ("tests.conftest_stores",)


def dead_pid() -> int:
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True, check=True)
    return int(process.stdout)


def left_behind(folder: Path, rows: int, prefix: str) -> None:
    spool = ScoreSpool(folder, segment_max_rows=max(1, rows // 2))
    records = make_scores(rows, prefix=prefix)
    spool.append(records[:rows // 2])  # fills the first segment
    spool.append(records[rows // 2:])
    spool.reject(['{"not": "a score"}'])
    spool.close()


def test_a_stopped_workers_rows_are_replayed_by_the_next_worker(engine: Engine, tmp_path: Path) -> None:
    root = tmp_path / "spool"
    stopped = worker_spool_dir(root, dead_pid())
    left_behind(stopped, 6, "S")
    assert len(list(stopped.glob(SEGMENT_GLOB))) == 2

    mine = worker_spool_dir(root, 1_000_000_001)
    assert adopt_orphaned_spools(root, mine) == 6
    assert not stopped.exists()  # its process is gone: nothing left to keep
    assert (mine / f"rejected-from-{stopped.name}.jsonl").read_text() == '{"not": "a score"}\n'
    with ScoringLogWriter(engine, mine) as writer:
        assert writer.flush(timeout=30)
    assert ScoringLogReader(engine).count_scores() == 6
    assert not list(mine.glob(SEGMENT_GLOB))


def test_a_running_workers_spool_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    running = ScoreSpool(worker_spool_dir(root, 42), segment_max_rows=10)
    running.append(make_scores(3))
    try:
        assert adopt_orphaned_spools(root, worker_spool_dir(root, 43)) == 0
        assert len(list(running.directory.glob(SEGMENT_GLOB))) == 1
    finally:
        running.close()


def test_an_unlocked_folder_of_a_live_process_is_emptied_but_kept(tmp_path: Path) -> None:
    # a worker that is starting may not have locked its folder yet: take the rows, never the folder
    root = tmp_path / "spool"
    starting = worker_spool_dir(root, os.getpid())
    left_behind(starting, 2, "L")
    mine = worker_spool_dir(root, 1_000_000_002)
    assert adopt_orphaned_spools(root, mine) == 2
    assert (starting / LOCK_FILE).exists() and not list(starting.glob(SEGMENT_GLOB))
    assert not (starting / REJECTED_FILE).exists()
    assert len(list(mine.glob(SEGMENT_GLOB))) == 2


def test_nothing_to_adopt(tmp_path: Path) -> None:
    assert adopt_orphaned_spools(tmp_path / "spool", tmp_path / "spool" / "worker-1") == 0
