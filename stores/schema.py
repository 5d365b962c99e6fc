"""SQLAlchemy Core tables for the closed loop; portable between SQLite and PostgreSQL.

All timestamps are stored in UTC (``UTCDateTime``) and come back timezone-aware on both backends.
These tables describe the schema the migrations (``stores/migrations``) build; ``stores.migrate.upgrade``
creates and upgrades a store, and a test checks the two agree. The ``entity_type`` CHECK lists come from
the entity registry (``triage.entities``); ``upgrade`` rewrites them in a store whose list differs.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

from triage.entities import ENTITIES

ID_LENGTH = 128
NAME_LENGTH = 128
VERSION_LENGTH = 64
SHORT_TEXT_LENGTH = 64
NOTE_LENGTH = 2000

ENTITY_TYPES_NAME = "entity_type"
"""The name of every ``entity_type`` CHECK constraint (``ck_<table>_entity_type`` after the naming convention)."""
MODEL_ALIASES = ("champion", "challenger")
OUTCOMES = ("violation", "no_violation", "escalate")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out.

    SQLite has no zone-aware type: SQLAlchemy writes the wall-clock fields and drops the offset, so
    values are normalised to UTC before binding (which also keeps SQLite's string comparison correct)
    and the UTC zone is re-attached on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; attach a timezone")
        utc_value = value.astimezone(UTC)
        return utc_value.replace(tzinfo=None) if dialect.name == "sqlite" else utc_value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (compact, indexable); plain JSON text elsewhere.
PortableJSON = sa.JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
AutoIncrementId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Explicit constraint names so both backends (and future migrations) agree on them.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


def entity_type_check(column: str = "entity_type") -> str:
    """The CHECK condition that admits exactly the registered entity types."""
    return _one_of(column, ENTITIES.names())


scores = sa.Table(
    "scores",
    metadata,
    # Client-generated (uuid4 hex) so writer retries and spool replays insert each record once.
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("scored_at", UTCDateTime(), nullable=False),
    sa.Column("entity_type", sa.String(16), nullable=False),
    sa.Column("entity_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("model_name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("model_version", sa.String(VERSION_LENGTH), nullable=False),
    sa.Column("model_alias", sa.String(16), nullable=False),
    # True: returned to the caller; False: shadow score (e.g. the challenger).
    sa.Column("served", sa.Boolean(create_constraint=True, name="served_bool"), nullable=False),
    sa.Column("probability", sa.Double(), nullable=False),
    sa.Column("score", sa.Double(), nullable=False),
    sa.Column("tier", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("expected_loss", sa.Double(), nullable=False),
    # Loss if a violation and nobody acts, as estimated when scored (NULL on rows logged before migration 0002:
    # ScoreRecord.exposure_estimate recovers it from probability and expected loss).
    sa.Column("exposure", sa.Double(), nullable=True),
    # The exact vector the model saw: numbers, null for NaN, "inf"/"-inf" for infinities.
    sa.Column("feature_vector", PortableJSON, nullable=False),
    # Identifies the feature schema (ordered names) the vector follows.
    sa.Column("feature_names_hash", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("request_id", sa.String(ID_LENGTH), nullable=True),
    sa.CheckConstraint(entity_type_check(), name=ENTITY_TYPES_NAME),
    sa.CheckConstraint(_one_of("model_alias", MODEL_ALIASES), name="model_alias"),
    sa.CheckConstraint("probability >= 0 AND probability <= 1", name="probability"),
    # Point-in-time join and "latest score per entity".
    sa.Index("ix_scores_entity_time", "entity_type", "entity_id", "scored_at"),
    # Time-window scans and feature matrices.
    sa.Index("ix_scores_scored_at", "scored_at"),
    # Window scans for one model/alias (champion vs challenger comparisons).
    sa.Index("ix_scores_model_time", "model_name", "model_alias", "scored_at"),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("decision_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("case_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("entity_type", sa.String(16), nullable=False),
    sa.Column("entity_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("risk_type", sa.String(SHORT_TEXT_LENGTH), nullable=True),
    sa.Column("enforcement_action", sa.String(SHORT_TEXT_LENGTH), nullable=True),
    sa.Column("loss_amount", sa.Double(), nullable=False),
    sa.Column("reviewer_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("decided_at", UTCDateTime(), nullable=False),
    # The model whose score the reviewer saw, if known.
    sa.Column("model_name", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("model_version", sa.String(VERSION_LENGTH), nullable=True),
    sa.Column("note", sa.String(NOTE_LENGTH), nullable=True),
    # Server-side receipt time; not part of the decision's content (idempotency ignores it).
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(entity_type_check(), name=ENTITY_TYPES_NAME),
    sa.CheckConstraint(_one_of("outcome", OUTCOMES), name="outcome"),
    sa.CheckConstraint("loss_amount >= 0", name="loss_amount"),
    sa.Index("ix_decisions_decided_at", "decided_at"),
    sa.Index("ix_decisions_entity", "entity_type", "entity_id"),
    sa.Index("ix_decisions_case_id", "case_id"),
)

alias_history = sa.Table(
    "alias_history",
    metadata,
    sa.Column("id", AutoIncrementId, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("alias", sa.String(SHORT_TEXT_LENGTH), nullable=False),
    # NULL means the alias was removed from the model at ``set_at``.
    sa.Column("version", sa.String(VERSION_LENGTH), nullable=True),
    sa.Column("set_at", UTCDateTime(), nullable=False),
    sa.Column("set_by", sa.String(ID_LENGTH), nullable=False),
    sa.Column("reason", sa.String(NOTE_LENGTH), nullable=False),
    # "Which version held this alias at time t": latest row with set_at <= t.
    sa.Index("ix_alias_history_lookup", "model_name", "alias", "set_at"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", AutoIncrementId, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(ID_LENGTH), nullable=False),
    sa.Column("action", sa.String(SHORT_TEXT_LENGTH), nullable=False),
    sa.Column("target", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("model_version", sa.String(VERSION_LENGTH), nullable=True),
    sa.Column("detail", PortableJSON, nullable=False),
    sa.Index("ix_audit_log_at", "at"),
    sa.Index("ix_audit_log_action_at", "action", "at"),
    sa.Index("ix_audit_log_target_at", "target", "at"),
)


store_meta = sa.Table(
    "store_meta",
    metadata,
    # Facts about the store itself that are not schema, e.g. which entity types its CHECK lists admit.
    sa.Column("key", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("value", PortableJSON, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)


API_KEY_ROLES = ("scorer", "reviewer", "admin")
API_KEY_ID_LENGTH = 32
SECRET_HASH_LENGTH = 64

api_keys = sa.Table(
    "api_keys",
    metadata,
    # One row per secret: a key (``key_id``) has one current secret and, during a rotation's grace period,
    # the previous ones; revoking the key revokes every row.
    sa.Column("id", AutoIncrementId, primary_key=True, autoincrement=True),
    sa.Column("key_id", sa.String(API_KEY_ID_LENGTH), nullable=False),
    sa.Column("name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    # sha256 (or HMAC-sha256 with a server pepper) of the whole secret, hex; the secret itself is never stored.
    sa.Column("secret_hash", sa.String(SECRET_HASH_LENGTH), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # Set on the old secret by a rotation with a grace period; NULL: valid until revoked.
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.CheckConstraint(_one_of("role", API_KEY_ROLES), name="role"),
    sa.UniqueConstraint("secret_hash"),
    sa.Index("ix_api_keys_key_id", "key_id"),
)
