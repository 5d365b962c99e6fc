"""Policy rules (versions, heads, hits) and the transactional outbox (events, per-subscriber deliveries).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stores.schema import AutoIncrementId, PortableJSON, UTCDateTime, entity_type_check

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MODES = "mode IN ('shadow', 'active', 'retired')"
HIT_MODES = "mode IN ('shadow', 'active')"


def upgrade() -> None:
    # the entity-type CHECK lists are the registry's as of this run (stores.migrate keeps them in sync after)
    entity_types = entity_type_check()
    op.create_table(
        "rule_versions",
        sa.Column("id", AutoIncrementId, nullable=False, autoincrement=True),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("entity_type", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("definition", PortableJSON, nullable=False),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("note", sa.String(2000), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_versions")),
        sa.CheckConstraint(MODES, name=op.f("ck_rule_versions_mode")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_rule_versions_version")),
        sa.CheckConstraint(entity_types, name=op.f("ck_rule_versions_entity_type")),
        sa.UniqueConstraint("rule_id", "version", name=op.f("uq_rule_versions_rule_id_version")),
    )
    op.create_index("ix_rule_versions_definition", "rule_versions", ["rule_id", "definition_hash", "mode"])
    op.create_table(
        "rule_heads",
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("entity_type", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", name=op.f("pk_rule_heads")),
        sa.CheckConstraint(MODES, name=op.f("ck_rule_heads_mode")),
        sa.CheckConstraint(entity_types, name=op.f("ck_rule_heads_entity_type")),
    )
    op.create_index("ix_rule_heads_entity_mode", "rule_heads", ["entity_type", "mode"])
    op.create_table(
        "rule_hits",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("hit_at", UTCDateTime(), nullable=False),
        sa.Column("entity_type", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(128), nullable=False),
        sa.Column("score_id", sa.String(128), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_hits")),
        sa.CheckConstraint(HIT_MODES, name=op.f("ck_rule_hits_mode")),
        sa.CheckConstraint(entity_types, name=op.f("ck_rule_hits_entity_type")),
    )
    op.create_index("ix_rule_hits_window", "rule_hits", ["hit_at", "entity_type", "rule_id", "version", "mode"])
    op.create_index("ix_rule_hits_rule_time", "rule_hits", ["rule_id", "hit_at"])

    op.create_table(
        "outbox_events",
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("topic", sa.String(128), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("payload", PortableJSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_outbox_events")),
    )
    op.create_index("ix_outbox_events_created_at", "outbox_events", ["created_at"])
    op.create_table(
        "outbox_deliveries",
        sa.Column("id", AutoIncrementId, nullable=False, autoincrement=True),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("subscriber", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("claim_token", sa.String(32), nullable=True),
        sa.Column("last_error", sa.String(2000), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_deliveries")),
        sa.ForeignKeyConstraint(["event_id"], ["outbox_events.event_id"], name="fk_outbox_deliveries_event_id"),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'dead')", name=op.f("ck_outbox_deliveries_status")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_outbox_deliveries_attempts")),
        sa.UniqueConstraint("event_id", "subscriber", name=op.f("uq_outbox_deliveries_event_id_subscriber")),
    )
    # claim_due and backlog read pending rows only, however many have been delivered
    op.create_index("ix_outbox_deliveries_due", "outbox_deliveries",
                    ["subscriber", "next_attempt_at", "id", "attempts"],
                    sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))
    op.create_index("ix_outbox_deliveries_dead", "outbox_deliveries", ["subscriber", "id"],
                    sqlite_where=sa.text("status = 'dead'"), postgresql_where=sa.text("status = 'dead'"))


def downgrade() -> None:
    for table in ("outbox_deliveries", "outbox_events", "rule_hits", "rule_heads", "rule_versions"):
        op.drop_table(table)
