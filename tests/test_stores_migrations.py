"""Store migrations: a new store is built by the migrations, the live table definitions agree with them, a
store created before migrations existed is adopted and upgraded with its rows, and a newly registered entity
type rewrites the entity-type CHECK lists (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from stores.engine import make_engine
from stores.migrate import BASELINE_REVISION, current_revision, head_revision, upgrade
from stores.records import TimeWindow
from stores.schema import metadata, scores
from stores.scoring_log import ScoringLogReader
from tests.conftest_stores import BASE_TIME, make_score
from triage.entities import ENTITIES, EntitySpec

pytest_plugins = ("tests.conftest_stores",)


def pre_migration_scores() -> sa.Table:
    """The scores table as `create_all` built it before migrations: no exposure column, the old CHECK list."""
    old = sa.MetaData(naming_convention=metadata.naming_convention)
    return sa.Table("scores", old, *(c._copy() for c in scores.columns if c.name != "exposure"),
                    sa.CheckConstraint("entity_type IN ('listing', 'account', 'group')", name="entity_type"))


def test_the_migrations_build_exactly_the_declared_schema(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_upgrade_twice_changes_nothing(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(scores.insert().values(make_score("L-1").to_row()))
    upgrade(engine)
    upgrade(engine)
    assert ScoringLogReader(engine).count_scores() == 1


def test_a_store_created_before_migrations_is_adopted_and_upgraded_with_its_rows(bare_store_url: str) -> None:
    engine = make_engine(bare_store_url)
    try:
        table = pre_migration_scores()
        table.metadata.create_all(engine)
        old = make_score("L-old").to_row()
        old.pop("exposure")
        with engine.begin() as connection:
            connection.execute(table.insert().values(old))
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision() != BASELINE_REVISION
        stored = ScoringLogReader(engine).scores_in_window(
            TimeWindow(BASE_TIME, BASE_TIME + timedelta(1)))
        assert [r.entity_id for r in stored] == ["L-old"]
        # the old row has no stored exposure: it is recovered from probability and expected loss
        assert stored[0].exposure is None
        assert stored[0].exposure_estimate == pytest.approx(stored[0].expected_loss / stored[0].probability)
        with engine.begin() as connection:
            connection.execute(scores.insert().values(make_score("L-new").to_row() | {"exposure": 120.0}))
    finally:
        engine.dispose()


def test_a_new_entity_type_rewrites_the_check_lists_and_keeps_the_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(scores.insert().values(make_score("L-1").to_row()))
    content = make_score("Q-1", entity_type="listing").to_row() | {"entity_type": "probe_type"}
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(scores.insert().values(content))
    spec = EntitySpec(name="probe_type", plural="probe_types", description="test only",
                      features="features.listing:LISTING_FEATURE_SET")
    with ENTITIES.temporarily(spec):
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(scores.insert().values(content))
        assert {r.entity_id for r in ScoringLogReader(engine).scores_in_window(
            TimeWindow(BASE_TIME, BASE_TIME + timedelta(1)))
        } == {"L-1", "Q-1"}
    # an entity type the registry drops while rows still use it is refused, not silently broken
    with pytest.raises(RuntimeError, match="probe_type"):
        upgrade(engine)
