"""Schema creation, engine configuration and the ScoreRecord / TimeWindow value types."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from stores.engine import make_engine, normalise_url
from stores.migrate import upgrade
from stores.records import ModelAlias, ScoreRecord, TimeWindow
from stores.schema import metadata, scores
from tests.conftest_stores import BASE_TIME, make_score

pytest_plugins = ("tests.conftest_stores",)

EXPECTED_INDEXES = {
    "scores": {"ix_scores_entity_time", "ix_scores_scored_at", "ix_scores_model_time"},
    "decisions": {"ix_decisions_decided_at", "ix_decisions_entity", "ix_decisions_case_id"},
    "alias_history": {"ix_alias_history_lookup"},
    "audit_log": {"ix_audit_log_at", "ix_audit_log_action_at", "ix_audit_log_target_at"},
}


def test_upgrade_is_idempotent_and_creates_tables_and_indexes(engine: Engine) -> None:
    upgrade(engine)
    upgrade(engine)
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) >= set(metadata.tables)
    for table, indexes in EXPECTED_INDEXES.items():
        assert {index["name"] for index in inspector.get_indexes(table)} >= indexes


def test_timestamps_come_back_aware_in_utc(engine: Engine) -> None:
    record = make_score(scored_at=datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))))
    with engine.begin() as connection:
        connection.execute(scores.insert().values(record.to_row()))
        stored = connection.execute(sa.select(scores.c.scored_at)).scalar_one()
    assert stored == BASE_TIME + timedelta(microseconds=123456)
    assert stored.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused_by_the_column_type(engine: Engine) -> None:
    row = make_score().to_row() | {"scored_at": datetime(2024, 5, 1, 12, 0)}
    with pytest.raises(sa.exc.StatementError, match="naive"), engine.begin() as connection:
        connection.execute(scores.insert().values(row))


def test_sqlite_engine_uses_wal_busy_timeout_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "triage.db"
    engine = make_engine(f"sqlite:///{path}", sqlite_busy_timeout_ms=1234)
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar_one() == "wal"
            assert pragma("PRAGMA busy_timeout").scalar_one() == 1234
            assert pragma("PRAGMA synchronous").scalar_one() == 2  # FULL
        assert path.parent.is_dir()
    finally:
        engine.dispose()


def test_postgres_urls_use_psycopg3() -> None:
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ValueError, match="unsupported"):
        make_engine("mysql://u@h/db")


def test_score_record_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_score(scored_at=datetime(2024, 5, 1))
    with pytest.raises(ValueError, match="probability"):
        make_score(probability=1.5)
    with pytest.raises(ValueError, match="entity_id"):
        make_score(entity_id="")
    with pytest.raises(ValueError):
        make_score(model_alias="shadow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one-dimensional"):
        make_score(feature_vector=np.ones((2, 2)))


def test_score_record_copies_the_vector_and_survives_json() -> None:
    vector = np.array([1.0, np.nan, np.inf, -np.inf])
    record = make_score(feature_vector=vector, model_alias=ModelAlias.CHALLENGER)
    vector[0] = 99.0  # the caller reusing its buffer must not change the record
    assert record.to_row()["feature_vector"] == [1.0, None, "inf", "-inf"]
    decoded = ScoreRecord.from_json_line(record.to_json_line())
    assert decoded.id == record.id and decoded.scored_at == record.scored_at
    assert decoded.feature_vector[0] == 1.0 and math.isnan(decoded.feature_vector[1])
    assert decoded.feature_vector[2:] == (math.inf, -math.inf)
    assert decoded.model_alias is ModelAlias.CHALLENGER


def test_time_window_is_half_open_and_aware() -> None:
    window = TimeWindow.last(timedelta(hours=1), now=BASE_TIME)
    assert (window.start, window.end) == (BASE_TIME - timedelta(hours=1), BASE_TIME)
    with pytest.raises(ValueError, match="after start"):
        TimeWindow(BASE_TIME, BASE_TIME)
    with pytest.raises(ValueError, match="timezone-aware"):
        TimeWindow(datetime(2024, 1, 1), datetime(2024, 1, 2, tzinfo=UTC))
