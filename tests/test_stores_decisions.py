"""DecisionStore: validation, idempotency, conflicts, durability and the point-in-time join to scores."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from stores.decisions import Decision, DecisionConflict, DecisionStore, Outcome, StoredDecision
from stores.engine import make_engine
from stores.migrate import upgrade
from stores.records import ModelAlias, ScoreRecord, TimeWindow, utc_now
from stores.scoring_log import ScoringLogWriter
from tests.conftest_stores import BASE_TIME, make_score

pytest_plugins = ("tests.conftest_stores",)

RECEIVED_AT = BASE_TIME + timedelta(days=1)
WHOLE_DAY = TimeWindow(BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=1))


def make_decision(**overrides: Any) -> Decision:
    fields: dict[str, Any] = {
        "decision_id": "D-1",
        "case_id": "C-1",
        "entity_type": "listing",
        "entity_id": "L-1",
        "outcome": "violation",
        "risk_type": "counterfeit",
        "enforcement_action": "remove_listing",
        "loss_amount": 125.5,
        "reviewer_id": "R-7",
        "decided_at": BASE_TIME + timedelta(hours=2),
        "model_name": "listing-risk",
        "model_version": "3",
        "note": "same image as known counterfeit",
    }
    fields.update(overrides)
    return Decision(**fields)


@pytest.fixture
def store(engine: Engine) -> DecisionStore:
    return DecisionStore(engine, clock=lambda: RECEIVED_AT)


def write_scores(engine: Engine, tmp_path: Path, records: list[ScoreRecord]) -> None:
    with ScoringLogWriter(engine, tmp_path / "spool") as writer:
        writer.submit(records)
        assert writer.flush(timeout=30)


def test_record_round_trip(store: DecisionStore) -> None:
    decision = make_decision()
    stored, created = store.record(decision)
    assert created
    assert stored.received_at == RECEIVED_AT

    fetched = store.get("D-1")
    assert isinstance(fetched, StoredDecision)
    assert fetched == stored
    assert fetched.outcome is Outcome.VIOLATION
    assert fetched.entity_type == "listing"
    assert fetched.decided_at == decision.decided_at
    assert fetched.decided_at.tzinfo is not None
    assert store.get("D-missing") is None


def test_recorded_decision_is_visible_to_a_fresh_engine(bare_store_url: str) -> None:
    # "Durable before it returns": committed, so an independent engine (another process) reads it.
    writer_engine, reader_engine = make_engine(bare_store_url), make_engine(bare_store_url)
    try:
        upgrade(writer_engine)
        DecisionStore(writer_engine).record(make_decision())
        stored = DecisionStore(reader_engine).get("D-1")
        assert stored is not None and stored.loss_amount == 125.5
    finally:
        writer_engine.dispose()
        reader_engine.dispose()


def test_same_decision_twice_is_idempotent(engine: Engine, store: DecisionStore) -> None:
    first, first_created = store.record(make_decision())
    # Surrounding whitespace is normalised away, so this is the same content.
    again, again_created = DecisionStore(engine, clock=lambda: RECEIVED_AT + timedelta(hours=1)).record(
        make_decision(reviewer_id="  R-7 ")
    )
    assert (first_created, again_created) == (True, False)
    assert again == first
    assert again.received_at == RECEIVED_AT  # the original receipt, not the retry's
    assert len(store.decisions_in_window(WHOLE_DAY)) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("outcome", "no_violation"),
        ("loss_amount", 125.50000001),
        ("decided_at", BASE_TIME + timedelta(hours=2, microseconds=1)),
        ("note", None),
        ("entity_id", "L-2"),
    ],
)
def test_same_id_with_different_content_names_the_field(store: DecisionStore, field: str, value: object) -> None:
    store.record(make_decision())
    with pytest.raises(DecisionConflict, match=field) as raised:
        store.record(make_decision(**{field: value}))
    assert raised.value.fields == (field,)
    assert raised.value.decision_id == "D-1"
    stored = store.get("D-1")
    assert stored is not None and stored == raised.value.stored


def test_conflict_lists_every_differing_field(store: DecisionStore) -> None:
    store.record(make_decision())
    with pytest.raises(DecisionConflict) as raised:
        store.record(make_decision(outcome="escalate", reviewer_id="R-8"))
    assert raised.value.fields == ("outcome", "reviewer_id")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("decision_id", ""),
        ("decision_id", "   "),
        ("case_id", "C" * 129),
        ("entity_type", "user"),
        ("outcome", "maybe"),
        ("loss_amount", -0.01),
        ("loss_amount", math.nan),
        ("loss_amount", math.inf),
        ("decided_at", datetime(2024, 5, 1, 12, 0)),  # naive
        ("decided_at", utc_now() + timedelta(days=2)),
        ("risk_type", "Counterfeit Goods"),
        ("note", "x" * 2001),
        ("reviewer_id", None),
    ],
)
def test_validation_error_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        make_decision(**{field: value})
    assert [error["loc"][0] for error in raised.value.errors()] == [field]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        make_decision(violation=True)
    assert raised.value.errors()[0]["loc"] == ("violation",)


def test_decisions_in_window_filters(store: DecisionStore) -> None:
    store.record(make_decision(decision_id="D-1", decided_at=BASE_TIME))
    store.record(make_decision(decision_id="D-2", decided_at=BASE_TIME + timedelta(hours=1), outcome="escalate"))
    store.record(make_decision(decision_id="D-3", decided_at=BASE_TIME + timedelta(hours=2)))
    store.record(make_decision(decision_id="D-4", decided_at=BASE_TIME, entity_type="account", entity_id="A-1"))
    window = TimeWindow(BASE_TIME, BASE_TIME + timedelta(hours=2))
    assert [d.decision_id for d in store.decisions_in_window(window)] == ["D-1", "D-4", "D-2"]
    assert [d.decision_id for d in store.decisions_in_window(window, outcome=Outcome.ESCALATE)] == ["D-2"]
    assert [d.decision_id for d in store.decisions_in_window(window, entity_type="account")] == ["D-4"]


def test_point_in_time_join_uses_the_score_before_the_decision(
    engine: Engine, store: DecisionStore, tmp_path: Path
) -> None:
    decided_at = BASE_TIME + timedelta(hours=2)
    before_old = make_score("L-1", scored_at=BASE_TIME, feature_vector=(1.0, 1.0))
    before = make_score("L-1", scored_at=BASE_TIME + timedelta(hours=1), feature_vector=(2.0, math.nan))
    at_decision_shadow = make_score(
        "L-1",
        scored_at=BASE_TIME + timedelta(hours=1),
        served=False,
        model_alias=ModelAlias.CHALLENGER,
        model_version="4",
        feature_vector=(2.0, math.nan),
    )
    after = make_score("L-1", scored_at=decided_at + timedelta(microseconds=1), feature_vector=(3.0, 3.0))
    other_entity = make_score("L-2", scored_at=BASE_TIME + timedelta(hours=1, minutes=30), feature_vector=(9.0, 9.0))
    write_scores(engine, tmp_path, [before_old, before, at_decision_shadow, after, other_entity])
    store.record(make_decision(decision_id="D-1", decided_at=decided_at))
    store.record(make_decision(decision_id="D-never-scored", entity_id="L-9", decided_at=decided_at))

    joined = {row.decision.decision_id: row for row in store.decisions_with_scores(WHOLE_DAY)}

    score = joined["D-1"].score
    assert score is not None
    assert score.id == before.id  # not the later score, and the served one on a tie
    assert score.feature_vector[0] == 2.0 and math.isnan(score.feature_vector[1])
    assert joined["D-never-scored"].score is None


def test_point_in_time_join_respects_model_filters(engine: Engine, store: DecisionStore, tmp_path: Path) -> None:
    decided_at = BASE_TIME + timedelta(hours=2)
    by_v3 = make_score("L-1", scored_at=BASE_TIME, model_version="3", feature_vector=(3.0,))
    by_v4 = make_score("L-1", scored_at=BASE_TIME + timedelta(hours=1), model_version="4", feature_vector=(4.0,))
    shadow = make_score(
        "L-1",
        scored_at=BASE_TIME + timedelta(hours=1, minutes=30),
        served=False,
        model_alias=ModelAlias.CHALLENGER,
        model_version="5",
        feature_vector=(5.0,),
    )
    write_scores(engine, tmp_path, [by_v3, by_v4, shadow])
    store.record(make_decision(decided_at=decided_at, model_version="3"))

    def matched(**filters: Any) -> str | None:
        (row,) = store.decisions_with_scores(WHOLE_DAY, **filters)
        return row.score.id if row.score is not None else None

    assert matched() == shadow.id
    assert matched(served=True) == by_v4.id
    assert matched(model_version="3") == by_v3.id
    assert matched(match_decision_model=True) == by_v3.id
    assert matched(model_version="6") is None


def test_sqlite_store_requires_full_synchronous(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fast.db'}", sqlite_synchronous="NORMAL")
    try:
        with pytest.raises(ValueError, match="synchronous=FULL"):
            DecisionStore(engine)
    finally:
        engine.dispose()
