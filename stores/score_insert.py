"""Inserting ``ScoreRecord``s into the ``scores`` table: one multi-row statement per chunk of records.

``INSERT ... VALUES (...), (...), ... ON CONFLICT (id) DO NOTHING`` (a replayed or retried row is stored
once), with driver-level parameters. Why not SQLAlchemy's ``executemany``: for every row it runs each
column's bind processor (the JSON encoder, the UTC datetime decorator), and SQLite's driver releases and
re-takes the GIL for every row, so under a busy event loop the writer thread waits up to a switch interval
per row and falls behind until its backlog spills to the spool. Here what a chunk's rows share (time, model,
flags) is encoded once, the feature vector by the C JSON encoder, and each chunk is one statement: one GIL
release. The values stored are those SQLAlchemy would store (the same column types' bind processors).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from stores.records import ScoreRecord, encode_feature_json
from stores.schema import scores

COLUMNS = ("id", "scored_at", "entity_type", "entity_id", "model_name", "model_version", "model_alias", "served",
           "probability", "score", "tier", "expected_loss", "exposure", "feature_vector", "feature_names_hash",
           "request_id")
# 16 parameters per row: 2,000 rows (32,000) stay below SQLite's 32,766 and PostgreSQL's 65,535 parameters.
ROWS_PER_STATEMENT = 2_000


def _unchanged(value: Any) -> Any:
    return value


class ScoreInsert:
    """``insert(connection, records)`` for one engine's dialect (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, rows_per_statement: int = ROWS_PER_STATEMENT) -> None:
        dialect = engine.dialect
        if dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"scoring log supports sqlite and postgresql, not {dialect.name!r}")
        if rows_per_statement < 1:
            raise ValueError("rows_per_statement must be at least 1")
        if {column.name for column in scores.columns} != set(COLUMNS):
            raise RuntimeError("the scores table's columns changed; update stores/score_insert.py")
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        # A text parameter becomes JSONB only through an explicit cast; SQLite keeps JSON as text.
        json_marker = f"CAST({marker} AS JSONB)" if dialect.name == "postgresql" else marker
        self._row = "(" + ", ".join(json_marker if c == "feature_vector" else marker for c in COLUMNS) + ")"
        self._head = f"INSERT INTO {scores.name} ({', '.join(COLUMNS)}) VALUES "
        self._rows_per_statement = rows_per_statement
        # the dialect's own implementation of each type, which is what SQLAlchemy binds with
        time_type, bool_type = (scores.c[name].type.dialect_impl(dialect) for name in ("scored_at", "served"))
        self._bind_time: Callable[[datetime], Any] = time_type.bind_processor(dialect) or _unchanged
        self._bind_bool: Callable[[bool], Any] = bool_type.bind_processor(dialect) or _unchanged
        self._statement = lru_cache(maxsize=8)(self._build_statement)

    def _build_statement(self, rows: int) -> str:
        return self._head + ", ".join([self._row] * rows) + " ON CONFLICT (id) DO NOTHING"

    def parameters(self, records: Sequence[ScoreRecord]) -> list[Any]:
        """The flat positional parameters of ``records``, row after row in ``COLUMNS`` order."""
        times: dict[datetime, Any] = {}
        flat: list[Any] = []
        extend = flat.extend
        bind_time, bind_bool = self._bind_time, self._bind_bool
        for r in records:
            stamp = times.get(r.scored_at)
            if stamp is None:
                stamp = times[r.scored_at] = bind_time(r.scored_at)
            extend((r.id, stamp, r.entity_type, r.entity_id, r.model_name, r.model_version,
                    r.model_alias.value, bind_bool(r.served), r.probability, r.score, r.tier, r.expected_loss,
                    r.exposure, encode_feature_json(r.feature_vector), r.feature_names_hash, r.request_id))
        return flat

    def insert(self, connection: sa.Connection, records: Sequence[ScoreRecord]) -> None:
        """Insert ``records`` in the caller's transaction (duplicate ids are skipped)."""
        step = self._rows_per_statement
        for start in range(0, len(records), step):
            chunk = records[start:start + step]
            connection.exec_driver_sql(self._statement(len(chunk)), tuple(self.parameters(chunk)))
