"""Shared fixtures for the ``stores`` tests: every store test runs on SQLite and on PostgreSQL.

Loaded by the test modules through ``pytest_plugins``. PostgreSQL tests use one throw-away database per
test session (``triage_test_<random>``), dropped at the end; they are skipped, with the reason, when
127.0.0.1:5432 is unreachable. The test modules also import helpers from here, before pytest loads it
as a plugin; it has no asserts, so assertion rewriting is switched off for it: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import Engine

from stores.engine import make_engine
from stores.migrate import upgrade
from stores.records import FeatureVector, ModelAlias, ScoreRecord

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_USERS = ("postgres", "root")
POSTGRES_MAINTENANCE_DATABASES = ("test", "postgres")
BACKENDS = ("sqlite", pytest.param("postgresql", marks=pytest.mark.postgres))
BASE_TIME = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def postgres_url(user: str, database: str) -> str:
    return f"postgresql+psycopg://{user}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"


def postgres_admin_connection(user: str, database: str) -> psycopg.Connection:
    # CREATE/DROP DATABASE cannot run inside a transaction block.
    return psycopg.connect(
        host=POSTGRES_HOST, port=POSTGRES_PORT, user=user, dbname=database, autocommit=True, connect_timeout=3
    )


def create_postgres_database(admin: tuple[str, str], name: str) -> None:
    with postgres_admin_connection(*admin) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_postgres_database(admin: tuple[str, str], name: str) -> None:
    with postgres_admin_connection(*admin) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def random_database_name() -> str:
    return f"triage_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def postgres_admin() -> tuple[str, str]:
    """(user, maintenance database) that can create databases; skips if the server is unreachable."""
    try:
        with socket.create_connection((POSTGRES_HOST, POSTGRES_PORT), timeout=2):
            pass
    except OSError as error:
        pytest.skip(f"PostgreSQL at {POSTGRES_HOST}:{POSTGRES_PORT} is unreachable ({error})")
    failures: list[str] = []
    for user in POSTGRES_USERS:
        for database in POSTGRES_MAINTENANCE_DATABASES:
            try:
                with postgres_admin_connection(user, database):
                    return user, database
            except psycopg.OperationalError as error:
                failures.append(f"{user}@{database}: {error}")
    pytest.skip(f"cannot log in to PostgreSQL at {POSTGRES_HOST}:{POSTGRES_PORT}: {'; '.join(failures)}")


@pytest.fixture(scope="session")
def postgres_session_database(postgres_admin: tuple[str, str]) -> Iterator[str]:
    """URL of a database created for this test session and dropped after it."""
    name = random_database_name()
    create_postgres_database(postgres_admin, name)
    try:
        yield postgres_url(postgres_admin[0], name)
    finally:
        drop_postgres_database(postgres_admin, name)


@pytest.fixture(params=BACKENDS)
def bare_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no tables) on the parametrised backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'triage.db'}"
    url: str = request.getfixturevalue("postgres_session_database")
    # The session database is shared by all PostgreSQL tests: start each from nothing (no tables, no migration
    # state), as a new store would.
    reset_postgres_schema(url)
    return url


def reset_postgres_schema(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()


@pytest.fixture
def engine(bare_store_url: str) -> Iterator[Engine]:
    """An engine on the parametrised backend with the schema created."""
    store_engine = make_engine(bare_store_url)
    upgrade(store_engine)
    try:
        yield store_engine
    finally:
        store_engine.dispose()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.01) -> bool:
    """Poll ``condition`` until true or ``timeout``; tests assert on the result, never on elapsed time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def make_score(
    entity_id: str = "L-1",
    *,
    scored_at: datetime = BASE_TIME,
    entity_type: str = "listing",
    model_name: str = "listing-risk",
    model_version: str = "3",
    model_alias: ModelAlias = ModelAlias.CHAMPION,
    served: bool = True,
    probability: float = 0.25,
    feature_vector: FeatureVector = (1.0, 2.0, 3.0),
    feature_names_hash: str = "fnh-v1",
    request_id: str | None = "req-1",
) -> ScoreRecord:
    return ScoreRecord(
        scored_at=scored_at,
        entity_type=entity_type,
        entity_id=entity_id,
        model_name=model_name,
        model_version=model_version,
        model_alias=model_alias,
        served=served,
        probability=probability,
        score=probability * 1000,
        tier="high" if probability > 0.5 else "low",
        expected_loss=probability * 120.0,
        feature_vector=feature_vector,
        feature_names_hash=feature_names_hash,
        request_id=request_id,
    )


def make_scores(count: int, *, prefix: str = "L", start: datetime = BASE_TIME) -> list[ScoreRecord]:
    return [
        make_score(f"{prefix}-{index}", scored_at=start + timedelta(seconds=index), feature_vector=(index, 0.5))
        for index in range(count)
    ]


__all__ = [
    "BASE_TIME",
    "create_postgres_database",
    "drop_postgres_database",
    "make_score",
    "make_scores",
    "postgres_url",
    "random_database_name",
    "wait_until",
]
