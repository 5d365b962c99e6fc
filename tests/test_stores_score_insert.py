"""The scoring log's fast path: column-wise records, time-ordered ids, the C-encoded feature JSON and the
multi-row insert, each checked against the slow, obvious path it replaces."""

from __future__ import annotations

import dataclasses
import json
import math
import uuid

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from stores.records import (
    ModelAlias,
    ScoreRecord,
    encode_feature_json,
    encode_feature_vector,
    new_score_ids,
)
from stores.schema import scores
from stores.score_insert import ScoreInsert
from tests.conftest_stores import BASE_TIME, make_score

pytest_plugins = ("tests.conftest_stores",)


def columns(n: int, seed: int = 3) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 6)) * 10.0 ** rng.integers(-8, 8, size=(n, 6))
    features[rng.random((n, 6)) < 0.2] = np.nan
    features[0, 1], features[min(1, n - 1), 2] = np.inf, -np.inf
    return {
        "scored_at": BASE_TIME, "entity_type": "listing", "model_name": "triage-listing-scorer",
        "model_version": "7", "model_alias": ModelAlias.CHAMPION, "served": True, "feature_names_hash": "abc123",
        "request_id": "req-1", "entity_ids": [f"L{i}" for i in range(n)], "probability": rng.random(n),
        "score": rng.random(n) * 100, "tier": [f"P{i % 4}" for i in range(n)],
        "expected_loss": rng.random(n) * 500, "features": features,
    }


def test_from_columns_builds_what_the_constructor_builds() -> None:
    cols = columns(50)
    built = ScoreRecord.from_columns(**cols)  # type: ignore[arg-type]
    assert len(built) == 50
    features = np.asarray(cols["features"])
    for i, record in enumerate(built):
        expected = ScoreRecord(
            scored_at=BASE_TIME, entity_type="listing", entity_id=f"L{i}",
            model_name="triage-listing-scorer", model_version="7", model_alias=ModelAlias.CHAMPION, served=True,
            probability=float(np.asarray(cols["probability"])[i]), score=float(np.asarray(cols["score"])[i]),
            tier=f"P{i % 4}", expected_loss=float(np.asarray(cols["expected_loss"])[i]),
            feature_vector=features[i], feature_names_hash="abc123", request_id="req-1", id=record.id)
        assert record.to_json_line() == expected.to_json_line()
        assert type(record.probability) is float and type(record.feature_vector) is tuple
    assert len({r.id for r in built}) == 50


def test_from_columns_copies_the_features() -> None:
    cols = columns(3)
    features = np.asarray(cols["features"])
    built = ScoreRecord.from_columns(**cols)  # type: ignore[arg-type]
    before = [r.feature_vector for r in built]
    features[:] = 123.0
    assert [r.feature_vector for r in built] == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"probability": [0.1, 1.5, 0.2]}, "probability must be in [0, 1], got 1.5 at row 1"),
        ({"score": [1.0, 2.0, math.nan]}, "score must be finite, got nan at row 2"),
        ({"expected_loss": [1.0, math.inf, 0.0]}, "expected_loss must be finite, got inf at row 1"),
        ({"entity_ids": ["L0", " ", "L2"]}, "entity_id must be a non-empty string, got ' ' (row 1)"),
        ({"tier": ["P0", "", "P1"]}, "tier must be a non-empty string"),
        ({"features": np.zeros((2, 6))}, "features must have one row per entity (3), got shape (2, 6)"),
        ({"score": [1.0, 2.0]}, "score has 2 values for 3 entities"),
        ({"model_version": ""}, "model_version must be a non-empty string"),
        ({"scored_at": BASE_TIME.replace(tzinfo=None)}, "scored_at must be timezone-aware"),
    ],
)
def test_from_columns_rejects_what_the_constructor_rejects(change: dict[str, object], message: str) -> None:
    cols = columns(3) | change
    with pytest.raises(ValueError) as raised:
        ScoreRecord.from_columns(**cols)  # type: ignore[arg-type]
    assert message in str(raised.value)


def test_from_columns_of_nothing_is_nothing() -> None:
    cols = columns(3) | {"entity_ids": [], "probability": [], "score": [], "tier": [], "expected_loss": [],
                         "features": np.empty((0, 6))}
    assert ScoreRecord.from_columns(**cols) == []  # type: ignore[arg-type]


def test_new_score_ids_are_unique_time_ordered_uuid7() -> None:
    first, second = new_score_ids(2_000), new_score_ids(2_000)
    parsed = [uuid.UUID(value) for value in first + second]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert all(len(value) == 32 and value == u.hex for value, u in zip(first + second, parsed, strict=True))
    assert len(set(first + second)) == 4_000
    # the first 48 bits are the clock in milliseconds: later calls never sort before earlier ones
    assert max(value[:12] for value in first) <= min(value[:12] for value in second)
    assert new_score_ids(0) == []


@pytest.mark.parametrize("seed", range(5))
def test_feature_json_equals_the_plain_encoding(seed: int) -> None:
    rng = np.random.default_rng(seed)
    vector = rng.normal(size=40) * 10.0 ** rng.integers(-30, 30, size=40)
    vector[rng.random(40) < 0.3] = np.nan
    vector[rng.random(40) < 0.1] = np.inf
    vector[rng.random(40) < 0.1] = -np.inf
    assert encode_feature_json(vector) == json.dumps(encode_feature_vector(vector), separators=(",", ":"))
    assert encode_feature_json(tuple(vector.tolist())) == encode_feature_json(vector)
    assert json.loads(encode_feature_json([1.0, 2.5e-300])) == [1.0, 2.5e-300]


def sqlalchemy_insert(engine: Engine, records: list[ScoreRecord]) -> None:
    """The obvious path: SQLAlchemy Core with the column types' own processing."""
    module = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = module.insert(scores).on_conflict_do_nothing(index_elements=[scores.c.id])
    with engine.begin() as connection:
        connection.execute(statement, [r.to_row() for r in records])


def stored(engine: Engine) -> dict[str, ScoreRecord]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(scores)).mappings().all()
    return {row["id"]: ScoreRecord.from_row(row) for row in rows}


def test_multi_row_insert_stores_what_sqlalchemy_stores(engine: Engine) -> None:
    cols = columns(23)
    fast = ScoreRecord.from_columns(**cols)  # type: ignore[arg-type]
    slow = ScoreRecord.from_columns(**cols | {"request_id": "req-2", "served": False})  # type: ignore[arg-type]
    # chunks of 5 rows: several statements and a short last one
    with engine.begin() as connection:
        ScoreInsert(engine, rows_per_statement=5).insert(connection, fast)
    sqlalchemy_insert(engine, slow)
    back = stored(engine)
    assert len(back) == 46
    with engine.connect() as connection:
        raw = {row[0]: tuple(row[1:]) for row in connection.exec_driver_sql(
            "SELECT id, CAST(scored_at AS TEXT) FROM scores")}
    for a, b in zip(fast, slow, strict=True):
        ours, theirs = back[a.id], back[b.id]
        assert ours.scored_at == theirs.scored_at == BASE_TIME
        # byte-identical as stored, which time-window queries (string comparison on SQLite) rely on
        assert raw[a.id] == raw[b.id]
        assert ours.served is True and theirs.served is False
        same = ("entity_type", "entity_id", "model_name", "model_version", "model_alias", "probability", "score",
                "tier", "expected_loss", "feature_names_hash")
        assert all(getattr(ours, f) == getattr(theirs, f) for f in same)
        np.testing.assert_array_equal(ours.feature_vector, theirs.feature_vector)  # NaN, ±inf included
        np.testing.assert_array_equal(ours.feature_vector, a.feature_vector)


def test_multi_row_insert_skips_ids_already_stored(engine: Engine) -> None:
    records = [dataclasses.replace(make_score(f"L{i}"), id=f"id-{i}") for i in range(4)]
    insert = ScoreInsert(engine, rows_per_statement=3)
    with engine.begin() as connection:
        insert.insert(connection, records[:2])
    with engine.begin() as connection:
        insert.insert(connection, records)  # a replay that overlaps what is stored
    assert sorted(stored(engine)) == ["id-0", "id-1", "id-2", "id-3"]


def test_insert_refuses_other_databases() -> None:
    with pytest.raises(ValueError, match="sqlite and postgresql"):
        ScoreInsert(sa.create_mock_engine("mysql://", executor=print))  # type: ignore[arg-type]
