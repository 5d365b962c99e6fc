"""Scores keep the exposure they were scored with (no more recovering it from probability and expected loss
for new rows); a `store_meta` table records facts about the store, e.g. the entity types its CHECK lists admit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stores.schema import PortableJSON, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable: rows logged before this revision have no stored exposure (ScoreRecord.exposure_estimate)
    op.add_column("scores", sa.Column("exposure", sa.Double(), nullable=True))
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", PortableJSON, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_store_meta")),
    )


def downgrade() -> None:
    op.drop_table("store_meta")
    with op.batch_alter_table("scores") as batch:
        batch.drop_column("exposure")
