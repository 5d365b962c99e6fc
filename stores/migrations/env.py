"""Alembic environment: migrations run on the connection `stores.migrate.upgrade` passes in."""

from __future__ import annotations

from alembic import context

from stores.migrate import metadata  # the whole schema: stores.schema's tables and the modules beside it

connection = context.config.attributes["connection"]
# batch mode on SQLite: its ALTER TABLE cannot change constraints, so such steps copy the table
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
