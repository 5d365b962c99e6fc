"""ScoringLogWriter (batching, spooling, replay, bounds, concurrency) and ScoringLogReader queries."""

from __future__ import annotations

import math
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from stores.engine import make_engine
from stores.migrate import upgrade
from stores.records import ModelAlias, TimeWindow
from stores.schema import scores
from stores.scoring_log import ScoringLogReader, ScoringLogWriter
from stores.spool import REJECTED_FILE, SEGMENT_GLOB, SpoolLockedError
from tests.conftest_stores import (
    BASE_TIME,
    create_postgres_database,
    drop_postgres_database,
    make_score,
    make_scores,
    postgres_url,
    random_database_name,
    wait_until,
)

pytest_plugins = ("tests.conftest_stores",)

FAST_RETRY: dict[str, Any] = {"retry_initial_s": 0.01, "retry_max_s": 0.05}


def stored_ids(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(sa.select(scores.c.id)).scalars())


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def writer(engine: Engine, spool_dir: Path) -> Iterator[ScoringLogWriter]:
    with ScoringLogWriter(engine, spool_dir, batch_size=100, **FAST_RETRY) as scoring_writer:
        yield scoring_writer


def test_submitted_scores_round_trip_with_nan_and_infinity(engine: Engine, writer: ScoringLogWriter) -> None:
    record = make_score(feature_vector=(1.5, math.nan, math.inf, -math.inf, 0.0), request_id="req-42")
    writer.submit([record])
    assert writer.flush(timeout=30)

    (stored,) = ScoringLogReader(engine).scores_in_window(TimeWindow.last(timedelta(days=1), BASE_TIME + timedelta(1)))
    assert stored.id == record.id
    assert stored.scored_at == BASE_TIME
    assert stored.scored_at.tzinfo is not None
    assert (stored.entity_type, stored.entity_id, stored.model_alias) == (
        "listing",
        "L-1",
        ModelAlias.CHAMPION,
    )
    assert (stored.model_name, stored.model_version, stored.served) == ("listing-risk", "3", True)
    assert (stored.probability, stored.score, stored.tier, stored.expected_loss) == (0.25, 250.0, "low", 30.0)
    assert (stored.feature_names_hash, stored.request_id) == ("fnh-v1", "req-42")
    assert stored.feature_vector[0] == 1.5
    assert math.isnan(stored.feature_vector[1])
    assert stored.feature_vector[2:] == (math.inf, -math.inf, 0.0)
    metrics = writer.metrics()
    assert (metrics.written, metrics.dropped, metrics.backlog, metrics.spooled, metrics.store_up) == (1, 0, 0, 0, True)


def test_reader_filters_window_model_alias_and_served(engine: Engine, writer: ScoringLogWriter) -> None:
    writer.submit(
        [
            make_score("L-1", scored_at=BASE_TIME),
            make_score("L-1", scored_at=BASE_TIME, model_alias=ModelAlias.CHALLENGER, served=False, model_version="4"),
            make_score("L-2", scored_at=BASE_TIME + timedelta(hours=1)),
            make_score("L-3", scored_at=BASE_TIME + timedelta(hours=2)),  # window end is exclusive
            make_score("A-1", scored_at=BASE_TIME, entity_type="account", model_name="account-risk"),
        ]
    )
    assert writer.flush(timeout=30)
    reader = ScoringLogReader(engine)
    window = TimeWindow(BASE_TIME, BASE_TIME + timedelta(hours=2))

    assert len(reader.scores_in_window(window)) == 4
    assert [s.entity_id for s in reader.scores_in_window(window, served=False)] == ["L-1"]
    challenger = reader.scores_in_window(window, model_alias=ModelAlias.CHALLENGER)
    assert [s.model_version for s in challenger] == ["4"]
    assert [s.entity_id for s in reader.scores_in_window(window, model_name="account-risk")] == ["A-1"]
    listing_served = reader.scores_in_window(window, entity_type="listing", served=True)
    assert [s.entity_id for s in listing_served] == ["L-1", "L-2"]
    assert reader.count_scores() == 5
    assert reader.count_scores(window) == 4


def test_latest_score_per_entity(engine: Engine, writer: ScoringLogWriter) -> None:
    writer.submit(
        [
            make_score("L-1", scored_at=BASE_TIME, probability=0.1),
            make_score("L-1", scored_at=BASE_TIME + timedelta(hours=3), probability=0.9),
            make_score(
                "L-1",
                scored_at=BASE_TIME + timedelta(hours=3),
                served=False,
                probability=0.7,
                model_alias=ModelAlias.CHALLENGER,
            ),
            make_score("L-2", scored_at=BASE_TIME + timedelta(hours=1), probability=0.4),
            make_score("A-1", scored_at=BASE_TIME + timedelta(hours=5), entity_type="account"),
        ]
    )
    assert writer.flush(timeout=30)
    reader = ScoringLogReader(engine)

    latest = reader.latest_scores("listing")
    assert {entity: score.probability for entity, score in latest.items()} == {"L-1": 0.9, "L-2": 0.4}
    only_one = reader.latest_scores("listing", ["L-1"], as_of=BASE_TIME + timedelta(hours=2))
    assert {entity: score.probability for entity, score in only_one.items()} == {"L-1": 0.1}
    shadow = reader.latest_scores("listing", served=False)
    assert {entity: score.probability for entity, score in shadow.items()} == {"L-1": 0.7}
    assert reader.latest_scores("group") == {}


def test_feature_matrix_returns_numpy_arrays(engine: Engine, writer: ScoringLogWriter) -> None:
    writer.submit(
        [
            make_score("L-1", scored_at=BASE_TIME, feature_vector=(1.0, math.nan)),
            make_score("L-2", scored_at=BASE_TIME + timedelta(minutes=1), feature_vector=(3.0, 4.0)),
            make_score(
                "L-2",
                scored_at=BASE_TIME + timedelta(minutes=1),
                served=False,
                feature_vector=(3.0, 4.0),
                model_alias=ModelAlias.CHALLENGER,
            ),
            make_score("A-1", entity_type="account", feature_vector=(9.0,)),
        ]
    )
    assert writer.flush(timeout=30)
    matrix = ScoringLogReader(engine).feature_matrix(
        "listing", TimeWindow(BASE_TIME, BASE_TIME + timedelta(hours=1))
    )
    assert matrix.entity_ids.tolist() == ["L-1", "L-2"]
    assert matrix.features.shape == (2, 2)
    np.testing.assert_array_equal(matrix.features, np.array([[1.0, np.nan], [3.0, 4.0]]))
    assert matrix.scored_at.dtype == np.dtype("datetime64[us]")
    assert matrix.scored_at[0] == np.datetime64("2024-05-01T12:00:00")
    assert matrix.feature_names_hashes == ("fnh-v1",)
    assert len(matrix.score_ids) == 2


def test_feature_matrix_refuses_mixed_feature_schemas(engine: Engine, writer: ScoringLogWriter) -> None:
    writer.submit(
        [
            make_score("L-1", feature_vector=(1.0, 2.0), feature_names_hash="v1"),
            make_score("L-2", feature_vector=(1.0, 2.0, 3.0), feature_names_hash="v2"),
        ]
    )
    assert writer.flush(timeout=30)
    reader = ScoringLogReader(engine)
    window = TimeWindow(BASE_TIME, BASE_TIME + timedelta(hours=1))
    with pytest.raises(ValueError, match="feature_names_hash"):
        reader.feature_matrix("listing", window)
    assert reader.feature_matrix("listing", window, feature_names_hash="v2").features.shape == (1, 3)


def test_writer_spools_while_store_is_down_and_replays_exactly(bare_store_url: str, spool_dir: Path) -> None:
    # The "store" is up at the network level but unusable: the tables do not exist yet.
    engine = make_engine(bare_store_url)
    records = make_scores(1_000)
    try:
        with ScoringLogWriter(engine, spool_dir, batch_size=50, **FAST_RETRY) as writer:
            for start in range(0, len(records), 100):
                writer.submit(records[start : start + 100])
            assert wait_until(lambda: writer.metrics().spooled_total == len(records))
            down = writer.metrics()
            assert not down.store_up
            assert down.last_error is not None and "scores" in down.last_error
            assert (down.written, down.dropped, down.spooled_total) == (0, 0, len(records))
            assert not writer.flush(timeout=0.2)

            upgrade(engine)  # the store comes back

            assert writer.flush(timeout=60)
            up = writer.metrics()
            assert (up.written, up.spooled, up.dropped, up.rejected, up.backlog, up.in_flight) == (
                len(records),
                0,
                0,
                0,
                0,
                0,
            )
            assert up.store_up
        assert sorted(stored_ids(engine)) == sorted(record.id for record in records)
        assert list(spool_dir.glob(SEGMENT_GLOB)) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_writer_survives_a_postgres_database_that_does_not_exist_yet(
    postgres_admin: tuple[str, str], spool_dir: Path
) -> None:
    name = random_database_name()
    engine = make_engine(postgres_url(postgres_admin[0], name))
    records = make_scores(300)
    try:
        with ScoringLogWriter(engine, spool_dir, batch_size=40, **FAST_RETRY) as writer:
            writer.submit(records)
            assert wait_until(lambda: writer.metrics().spooled_total == len(records))
            assert not writer.store_up
            assert name in (writer.last_error or "")

            create_postgres_database(postgres_admin, name)
            upgrade(engine)

            assert writer.flush(timeout=60)
            metrics = writer.metrics()
            assert (metrics.written, metrics.dropped, metrics.spooled, metrics.spooled_total) == (300, 0, 0, 300)
        assert len(set(stored_ids(engine))) == 300
    finally:
        engine.dispose()
        drop_postgres_database(postgres_admin, name)


def test_writer_rides_out_a_locked_sqlite_database(tmp_path: Path, spool_dir: Path) -> None:
    path = tmp_path / "locked.db"
    engine = make_engine(f"sqlite:///{path}", sqlite_busy_timeout_ms=10)
    upgrade(engine)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
        with ScoringLogWriter(engine, spool_dir, batch_size=25, **FAST_RETRY) as writer:
            writer.submit(make_scores(200))
            assert wait_until(lambda: writer.metrics().spooled_total == 200)
            assert "locked" in (writer.last_error or "")
            blocker.execute("ROLLBACK")
            assert writer.flush(timeout=60)
            assert (writer.written, writer.dropped) == (200, 0)
        assert len(stored_ids(engine)) == 200
    finally:
        blocker.close()
        engine.dispose()


def test_backlog_bound_is_honoured_and_overflow_is_spooled_not_dropped(engine: Engine, spool_dir: Path) -> None:
    records = make_scores(250)
    # A long flush interval and a high spill threshold keep rows in memory so that submit meets the bound.
    with ScoringLogWriter(
        engine, spool_dir, batch_size=1_000, flush_interval_s=30, max_backlog=100, spill_threshold=100
    ) as writer:
        writer.submit(records)
        after_submit = writer.metrics()
        assert after_submit.backlog <= 100
        # The 150 rows over the bound were spooled before submit returned.
        assert after_submit.spooled_total >= 150
        assert after_submit.dropped == 0
        assert writer.flush(timeout=60)
        assert (writer.written, writer.dropped, writer.backlog) == (250, 0, 0)
    assert sorted(stored_ids(engine)) == sorted(record.id for record in records)


def test_backlog_stays_bounded_while_store_is_down(bare_store_url: str, spool_dir: Path) -> None:
    engine = make_engine(bare_store_url)
    try:
        with ScoringLogWriter(engine, spool_dir, max_backlog=50, **FAST_RETRY) as writer:
            for chunk in range(40):
                writer.submit(make_scores(25, prefix=f"c{chunk}"))
                assert writer.backlog <= 50
            assert wait_until(lambda: writer.metrics().spooled_total == 1_000)
            assert writer.dropped == 0
    finally:
        engine.dispose()


def test_concurrent_submits_land_exactly_once(engine: Engine, writer: ScoringLogWriter) -> None:
    threads_count, submits_per_thread, rows_per_submit = 8, 40, 10
    submitted: list[list[str]] = [[] for _ in range(threads_count)]
    start = threading.Barrier(threads_count)

    def submit_from(thread_index: int) -> None:
        start.wait()
        for submit_index in range(submits_per_thread):
            batch = make_scores(rows_per_submit, prefix=f"t{thread_index}-{submit_index}")
            submitted[thread_index].extend(record.id for record in batch)
            writer.submit(batch)

    threads = [threading.Thread(target=submit_from, args=(index,)) for index in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    expected = sorted(record_id for ids in submitted for record_id in ids)

    assert writer.flush(timeout=60)
    assert len(expected) == threads_count * submits_per_thread * rows_per_submit
    assert sorted(stored_ids(engine)) == expected
    assert (writer.written, writer.dropped) == (len(expected), 0)


def test_close_spools_what_it_cannot_store_and_next_writer_replays_it(bare_store_url: str, spool_dir: Path) -> None:
    engine = make_engine(bare_store_url)
    records = make_scores(120)
    try:
        writer = ScoringLogWriter(engine, spool_dir, **FAST_RETRY)
        writer.submit(records)
        writer.close(timeout=0.3)
        assert writer.metrics().spooled == 120
        assert writer.dropped == 0

        upgrade(engine)
        with ScoringLogWriter(engine, spool_dir, **FAST_RETRY) as restarted:
            assert restarted.metrics().spooled == 120
            assert restarted.flush(timeout=60)
            assert restarted.written == 120
        assert sorted(stored_ids(engine)) == sorted(record.id for record in records)
    finally:
        engine.dispose()


def test_rows_the_store_refuses_are_rejected_and_kept(
    engine: Engine, writer: ScoringLogWriter, spool_dir: Path
) -> None:
    records = make_scores(10)
    # Bypass the constructor's validation to simulate a record the database refuses (check constraint).
    object.__setattr__(records[3], "probability", 2.0)
    writer.submit(records)
    assert writer.flush(timeout=30)
    metrics = writer.metrics()
    assert (metrics.written, metrics.rejected, metrics.dropped) == (9, 1, 0)
    assert records[3].id not in stored_ids(engine)
    assert records[3].id in (spool_dir / REJECTED_FILE).read_text()


def test_spool_failure_counts_drops_and_reports_the_error(bare_store_url: str, spool_dir: Path) -> None:
    engine = make_engine(bare_store_url)
    try:
        with ScoringLogWriter(engine, spool_dir, **FAST_RETRY) as writer:
            # Make the spool unusable: its directory becomes a plain file.
            shutil.rmtree(spool_dir)
            spool_dir.write_text("not a directory")
            writer.submit(make_scores(30))
            assert wait_until(lambda: writer.metrics().dropped == 30)
            assert "spool write failed" in (writer.last_error or "")
            assert writer.metrics().written == 0
    finally:
        engine.dispose()


def test_one_writer_per_spool_directory(engine: Engine, writer: ScoringLogWriter, spool_dir: Path) -> None:
    with pytest.raises(SpoolLockedError):
        ScoringLogWriter(engine, spool_dir)
