"""Create or upgrade a store's schema: the Alembic migrations in `stores/migrations`, run in-process.

`upgrade(engine)` is what the service, the CLI and the tests call to create or open a store. It
1. takes a lock, so several workers or replicas starting at once migrate once (PostgreSQL: an advisory
   lock; SQLite: a lock file beside the database);
2. adopts a store created before migrations existed (tables but no `alembic_version`) by stamping it at the
   baseline revision, then runs every later migration;
3. syncs the entity-type CHECK lists with the entity registry (`triage.entities`): when the registry
   admits other entity types than the store records in `store_meta`, each `ck_<table>_entity_type`
   constraint is rewritten (PostgreSQL: drop and re-add; SQLite: Alembic's batch copy of the table). So a
   new entity type needs no migration file of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

# the modules that declare tables beside stores.schema: imported so `metadata` is the whole schema
from stores import outbox, rules  # noqa: F401
from stores.engine import sqlite_file_path
from stores.schema import ENTITY_TYPES_NAME, entity_type_check, metadata, store_meta
from triage.entities import ENTITIES

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE_REVISION = "0001"
# The tables a store had before migrations; one of them present without `alembic_version` means "adopt".
PRE_MIGRATION_TABLES = ("scores", "decisions", "alias_history", "audit_log", "api_keys")
# What the baseline's CHECK lists admit (a store without a `store_meta` row was built with these).
BASELINE_ENTITY_TYPES = ("listing", "account", "group")
ENTITY_TYPES_KEY = "entity_types"
# pg_advisory_xact_lock key: any fixed 64-bit number that no other application on the database uses
_PG_LOCK_KEY = 0x7472696167650001


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None, "the migrations folder has no head revision"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the store to the newest schema and the registry's entity types (see the module docstring)."""
    with _migration_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        config = alembic_config(connection)
        tables = set(sa.inspect(connection).get_table_names())
        if "alembic_version" not in tables and tables & set(PRE_MIGRATION_TABLES):
            command.stamp(config, BASELINE_REVISION)
        command.upgrade(config, "head")
        sync_entity_types(connection)


def sync_entity_types(connection: Connection) -> bool:
    """Rewrite the entity-type CHECK constraints when the registry's list differs from the store's; returns
    whether anything changed. Refuses to drop an entity type that rows still use."""
    wanted = list(ENTITIES.names())
    row = connection.execute(sa.select(store_meta.c.value).where(store_meta.c.key == ENTITY_TYPES_KEY)).first()
    stored = list(row[0]) if row is not None else list(BASELINE_ENTITY_TYPES)
    if stored == wanted and row is not None:
        return False
    tables = [table for table in metadata.sorted_tables
              if any(c.name == f"ck_{table.name}_{ENTITY_TYPES_NAME}" for c in table.constraints)]
    present = set(sa.inspect(connection).get_table_names())
    if stored != wanted:
        removed = sorted(set(stored) - set(wanted))
        for table in (t for t in tables if t.name in present):
            if removed:
                used = connection.execute(sa.select(sa.func.count()).select_from(table)
                                          .where(table.c.entity_type.in_(removed))).scalar_one()
                if used:
                    raise RuntimeError(f"the store's {table.name} table holds {used} rows of entity types "
                                       f"{removed} that the registry no longer declares: register them again")
            _rewrite_entity_check(connection, table.name)
    values = {"key": ENTITY_TYPES_KEY, "value": wanted, "updated_at": datetime.now(UTC)}
    if row is None:
        connection.execute(store_meta.insert().values(values))
    else:
        connection.execute(store_meta.update().where(store_meta.c.key == ENTITY_TYPES_KEY).values(values))
    return True


def _rewrite_entity_check(connection: Connection, table: str) -> None:
    name = f"ck_{table}_{ENTITY_TYPES_NAME}"
    operations = Operations(MigrationContext.configure(connection))
    if connection.dialect.name == "sqlite":
        # SQLite cannot alter a constraint in place: Alembic copies the table with the new constraint
        with operations.batch_alter_table(table, recreate="always") as batch:
            batch.drop_constraint(name, type_="check")
            batch.create_check_constraint(operations.f(name), sa.text(entity_type_check()))
    else:
        operations.drop_constraint(name, table, type_="check")
        operations.create_check_constraint(operations.f(name), table, sa.text(entity_type_check()))


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """A lock file beside a SQLite database (its own locking would fail a second writer after the busy
    timeout rather than wait for a long migration); PostgreSQL locks inside the transaction instead."""
    path = sqlite_file_path(engine.url)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".migrate.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
