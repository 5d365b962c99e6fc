"""Baseline: the store as `create_all` built it before migrations (scores, decisions, alias history, audit
log, API keys). A store created that way is stamped at this revision and upgraded from here.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stores.schema import AutoIncrementId, PortableJSON, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# frozen copies of the values at this revision: later changes to the live schema must not rewrite history
ENTITY_TYPES = "entity_type IN ('listing', 'account', 'group')"
MODEL_ALIASES = "model_alias IN ('champion', 'challenger')"
OUTCOMES = "outcome IN ('violation', 'no_violation', 'escalate')"
API_KEY_ROLES = "role IN ('scorer', 'reviewer', 'admin')"


def upgrade() -> None:
    op.create_table(
        "scores",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("scored_at", UTCDateTime(), nullable=False),
        sa.Column("entity_type", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(128), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("model_alias", sa.String(16), nullable=False),
        sa.Column("served", sa.Boolean(create_constraint=True, name="served_bool"), nullable=False),
        sa.Column("probability", sa.Double(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("tier", sa.String(128), nullable=False),
        sa.Column("expected_loss", sa.Double(), nullable=False),
        sa.Column("feature_vector", PortableJSON, nullable=False),
        sa.Column("feature_names_hash", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scores")),
        sa.CheckConstraint(ENTITY_TYPES, name=op.f("ck_scores_entity_type")),
        sa.CheckConstraint(MODEL_ALIASES, name=op.f("ck_scores_model_alias")),
        sa.CheckConstraint("probability >= 0 AND probability <= 1", name=op.f("ck_scores_probability")),
    )
    op.create_index("ix_scores_entity_time", "scores", ["entity_type", "entity_id", "scored_at"])
    op.create_index("ix_scores_scored_at", "scores", ["scored_at"])
    op.create_index("ix_scores_model_time", "scores", ["model_name", "model_alias", "scored_at"])

    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(128), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("entity_type", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("risk_type", sa.String(64), nullable=True),
        sa.Column("enforcement_action", sa.String(64), nullable=True),
        sa.Column("loss_amount", sa.Double(), nullable=False),
        sa.Column("reviewer_id", sa.String(128), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("note", sa.String(2000), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decisions")),
        sa.CheckConstraint(ENTITY_TYPES, name=op.f("ck_decisions_entity_type")),
        sa.CheckConstraint(OUTCOMES, name=op.f("ck_decisions_outcome")),
        sa.CheckConstraint("loss_amount >= 0", name=op.f("ck_decisions_loss_amount")),
    )
    op.create_index("ix_decisions_decided_at", "decisions", ["decided_at"])
    op.create_index("ix_decisions_entity", "decisions", ["entity_type", "entity_id"])
    op.create_index("ix_decisions_case_id", "decisions", ["case_id"])

    op.create_table(
        "alias_history",
        sa.Column("id", AutoIncrementId, nullable=False, autoincrement=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("set_at", UTCDateTime(), nullable=False),
        sa.Column("set_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alias_history")),
    )
    op.create_index("ix_alias_history_lookup", "alias_history", ["model_name", "alias", "set_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", AutoIncrementId, nullable=False, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("detail", PortableJSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_action_at", "audit_log", ["action", "at"])
    op.create_index("ix_audit_log_target_at", "audit_log", ["target", "at"])

    op.create_table(
        "api_keys",
        sa.Column("id", AutoIncrementId, nullable=False, autoincrement=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.CheckConstraint(API_KEY_ROLES, name=op.f("ck_api_keys_role")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
    )
    op.create_index("ix_api_keys_key_id", "api_keys", ["key_id"])


def downgrade() -> None:
    for table in ("api_keys", "audit_log", "alias_history", "decisions", "scores"):
        op.drop_table(table)
