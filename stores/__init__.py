"""Durable stores for the closed loop: scores served, reviewer decisions, alias history and audit log.

Modules (import what you need; nothing here runs at import time):

- ``stores.engine``: ``make_engine(url)`` for SQLite (default) or PostgreSQL.
- ``stores.schema``: SQLAlchemy Core tables; ``stores.migrate.upgrade(engine)`` creates or upgrades a store.
- ``stores.records``: value types shared by the stores (``ScoreRecord``, ``TimeWindow``, ...).
- ``stores.scoring_log``: ``ScoringLogWriter`` (non-blocking, spooling) and ``ScoringLogReader``.
- ``stores.decisions``: ``Decision``, ``DecisionStore`` with a point-in-time join to scores.
- ``stores.alias_history``: which model version held which alias when.
- ``stores.audit_log``: who did what to which model, when.
- ``stores.rules``: versioned policy rules (shadow before active) and their hits.
- ``stores.outbox``: the transactional outbox: events enqueued in the caller's transaction, per-subscriber
  deliveries claimed with leases (``delivery`` sends them).
- ``stores.migrate``: ``upgrade(engine)`` creates or upgrades a store (Alembic, ``stores/migrations``).
"""
