"""Engine construction: SQLite (WAL, busy timeout, durable commits) or PostgreSQL via psycopg 3."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import IO, Any, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url

SQLiteSynchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
log = logging.getLogger(__name__)

# Stores hold decisions, scores, audit entries and API-key hashes: owner-only, whatever the umask.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents owner-only (0700); folders that exist keep their mode."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another worker created it first
            folder.mkdir(mode=PRIVATE_DIR_MODE)
    return path


def open_private(path: Path, *, encoding: str | None = "utf-8") -> IO[str]:
    """Open ``path`` for appending text, creating it owner-only (0600) if absent (in one step: the file is
    never readable by others, not even between creation and a chmod)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
    return os.fdopen(descriptor, "a", encoding=encoding)


def _create_private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would follow the umask, usually 0644); SQLite gives
    its -wal and -shm files the database file's mode. An existing file is left as it is, with a warning when
    others may read it."""
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("store %s is readable by other users (mode %o); chmod 600 it", path, mode)


def normalise_url(url: str | URL) -> URL:
    """Pin PostgreSQL URLs to psycopg 3 (``postgresql://`` would otherwise pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def sqlite_file_path(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for in-memory / URI-style databases."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def make_engine(
    url: str | URL,
    *,
    sqlite_busy_timeout_ms: int = 5_000,
    sqlite_synchronous: SQLiteSynchronous = "FULL",
    connect_timeout_s: int = 5,
    echo: bool = False,
) -> Engine:
    """Create an engine for ``url``; the caller owns it (and should ``dispose()`` it).

    SQLite: WAL so readers never block the writer, a busy timeout so concurrent writers wait instead of
    failing at once, ``synchronous=FULL`` by default so a committed transaction survives power loss
    (``NORMAL`` in WAL mode may lose the last commits), and the file and its folder are created owner-only.
    PostgreSQL: psycopg 3, pre-ping so connections broken by a restart are replaced transparently, and
    a connect timeout so an unreachable server fails fast rather than hanging a writer.
    """
    parsed = normalise_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _make_sqlite_engine(parsed, sqlite_busy_timeout_ms, sqlite_synchronous, echo)
    if backend == "postgresql":
        connect_args: dict[str, Any] = {"connect_timeout": connect_timeout_s}
        return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args, echo=echo)
    raise ValueError(f"unsupported database backend {backend!r} in {parsed.render_as_string()}")


def _make_sqlite_engine(url: URL, busy_timeout_ms: int, synchronous: SQLiteSynchronous, echo: bool) -> Engine:
    path = sqlite_file_path(url)
    if path is not None:
        _create_private_sqlite_file(path)
    engine = sa.create_engine(url, echo=echo)

    @event.listens_for(engine, "connect")
    def configure_connection(dbapi_connection: Any, _connection_record: Any) -> None:
        # Take transaction control away from Python's sqlite3 module (which never BEGINs before a
        # SELECT) so that SQLAlchemy's BEGIN below gives every transaction real isolation.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def begin_transaction(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


def sqlite_synchronous_level(engine: Engine) -> int | None:
    """SQLite's ``PRAGMA synchronous`` on a pooled connection (0 OFF .. 3 EXTRA); None for other backends."""
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as connection:
        level = connection.exec_driver_sql("PRAGMA synchronous").scalar_one()
    return int(level)
