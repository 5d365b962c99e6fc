"""Alembic migrations of the store (scoring log, decisions, alias history, audit log, keys, ...).

Run through `stores.migrate.upgrade(engine)`, never by hand: it takes a lock so several processes may start
at once, adopts a store created before migrations existed, and syncs the entity-type CHECK lists with the
entity registry. A new schema change is a new file in `versions/` (`down_revision` = the previous head).
"""
