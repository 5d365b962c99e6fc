"""RuleStore on SQLite and PostgreSQL: append-only versions, shadow before active, the live set, history,
concurrent writers, and the hit log with its windowed counts (read from the index, not the history)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from policy.rule_engine import RuleSet
from policy.rulebook import RuleMode
from stores.records import TimeWindow
from stores.rules import (
    RuleConflict,
    RuleHitCount,
    RuleHitRow,
    RuleStore,
    RuleStoreError,
    hit_count_query,
    hit_rows,
    rule_heads,
    rule_hits,
)
from tests.conftest_stores import BASE_TIME
from tests.test_rule_engine import VARIABLES, columns, make_rule

pytest_plugins = ("tests.conftest_stores",)


class Clock:
    def __init__(self, now: datetime = BASE_TIME) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(engine: Engine, clock: Clock) -> RuleStore:
    return RuleStore(engine, clock=clock)


def shadow_rule(**overrides: Any) -> Any:
    return make_rule(**{"mode": "shadow", "version": 0, **overrides})


def test_versions_are_appended_and_unchanged_saves_add_none(store: RuleStore, clock: Clock) -> None:
    first = store.save(shadow_rule(), created_by="ana", note="from the RCA report")
    assert first.created and first.rule.version == 1 and first.rule.mode is RuleMode.SHADOW
    again = store.save(shadow_rule(version=7), created_by="ana")
    assert not again.created and again.rule.version == 1
    clock.now += timedelta(hours=1)
    changed = store.save(shadow_rule(condition="price < 40.0 && category == 'vape'"), created_by="bo", note="tighter")
    assert changed.created and changed.rule.version == 2
    history = store.history("thc-cart-cheap")
    assert [(v.rule.version, v.rule.mode, v.created_by, v.note) for v in history] == [
        (1, RuleMode.SHADOW, "ana", "from the RCA report"), (2, RuleMode.SHADOW, "bo", "tighter")]
    assert history[1].created_at == BASE_TIME + timedelta(hours=1)
    assert store.get("thc-cart-cheap", 1) == first.rule
    assert store.get("thc-cart-cheap") == changed.rule
    assert store.get("nope") is None


def test_a_rule_runs_in_shadow_before_it_acts(store: RuleStore) -> None:
    with pytest.raises(RuleStoreError, match="must be saved in shadow first"):
        store.save(make_rule(mode="active"), created_by="ana")
    store.save(shadow_rule(), created_by="ana")
    active = store.set_mode("thc-cart-cheap", "active", changed_by="lead", reason="precision 0.92 in shadow")
    assert active.rule.version == 2 and active.rule.mode is RuleMode.ACTIVE
    # a changed definition cannot go straight to active, even from an active rule
    with pytest.raises(RuleStoreError, match="has not run in shadow"):
        store.save(make_rule(condition="price < 30.0", mode="active"), created_by="ana")
    assert store.get("thc-cart-cheap") == active.rule
    store.save(shadow_rule(condition="price < 30.0"), created_by="ana")
    back = store.set_mode("thc-cart-cheap", RuleMode.ACTIVE, changed_by="lead", reason="checked")
    assert back.rule.version == 4 and back.rule.condition == "price < 30.0"
    # the first definition ran in shadow at version 1: it may be re-activated directly
    reverted = store.save(make_rule(mode="active"), created_by="lead", note="revert")
    assert reverted.rule.version == 5
    history = store.history("thc-cart-cheap")
    assert [(v.rule.mode.value, v.created_by, v.note) for v in history][1] == (
        "active", "lead", "precision 0.92 in shadow")


def test_min_shadow_time(engine: Engine, clock: Clock) -> None:
    store = RuleStore(engine, clock=clock, min_shadow=timedelta(days=1))
    store.save(shadow_rule(), created_by="ana")
    clock.now += timedelta(hours=2)
    with pytest.raises(RuleStoreError, match="before it has run 1 day"):
        store.set_mode("thc-cart-cheap", "active", changed_by="lead", reason="eager")
    clock.now += timedelta(days=1)
    assert store.set_mode("thc-cart-cheap", "active", changed_by="lead", reason="a day of shadow").created


def test_current_is_the_live_set_of_one_entity_type(store: RuleStore) -> None:
    store.save(shadow_rule(rule_id="b-rule"), created_by="ana")
    store.save(shadow_rule(rule_id="a-rule"), created_by="ana")
    store.set_mode("a-rule", "active", changed_by="lead", reason="go")
    store.save(shadow_rule(rule_id="old-rule"), created_by="ana")
    store.set_mode("old-rule", "retired", changed_by="lead", reason="superseded by a-rule")
    store.save(shadow_rule(rule_id="acct-rule", entity_type="account", condition="account_age_days < 2.0",
                           reason="new account"), created_by="ana")
    live = store.current("listing")
    assert [(r.rule_id, r.version, r.mode) for r in live] == [("a-rule", 2, RuleMode.ACTIVE),
                                                             ("b-rule", 1, RuleMode.SHADOW)]
    assert [r.rule_id for r in store.current("account")] == ["acct-rule"]
    # what the store returns compiles and evaluates
    hits = RuleSet.from_rules(live, VARIABLES).evaluate(
        columns(price=[10.0], prohibited_terms=[1.0], category=["vape"]), 1)
    assert [h.rule_id for h in hits.acting(0)] == ["a-rule"] and [h.rule_id for h in hits.shadow(0)] == ["b-rule"]
    # a retired rule can come back through shadow
    store.set_mode("old-rule", "shadow", changed_by="lead", reason="needed again")
    assert "old-rule" in [r.rule_id for r in store.current("listing")]


def test_refusals_name_the_rule(store: RuleStore) -> None:
    store.save(shadow_rule(), created_by="ana")
    with pytest.raises(RuleStoreError, match="belongs to entity type 'listing'"):
        store.save(shadow_rule(entity_type="account"), created_by="ana")
    with pytest.raises(RuleConflict, match="at version 1, not 3"):
        store.save(shadow_rule(condition="price < 1.0"), created_by="ana", expected_version=3)
    with pytest.raises(RuleStoreError, match="no rule 'missing'"):
        store.set_mode("missing", "active", changed_by="lead", reason="x")
    with pytest.raises(ValueError, match="reason"):
        store.set_mode("thc-cart-cheap", "active", changed_by="lead", reason=" ")
    with pytest.raises(ValueError, match="created_by"):
        store.save(shadow_rule(condition="price < 2.0"), created_by="")


def test_concurrent_writers_never_share_a_version(engine: Engine) -> None:
    store = RuleStore(engine)
    store.save(shadow_rule(), created_by="ana")
    outcomes: list[str] = []
    lock = threading.Lock()

    def writer(name: str) -> None:
        for i in range(8):
            try:
                saved = store.save(shadow_rule(condition=f"price < {i + 1}.5 && category == '{name}'"),
                                   created_by=name)
                result = f"v{saved.rule.version}"
            except RuleConflict:
                result = "conflict"
            except sa.exc.OperationalError:
                result = "busy"  # SQLite's busy timeout; not expected at this rate, but not a lost update
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("ana", "bo")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    versions = [v.rule.version for v in store.history("thc-cart-cheap")]
    assert versions == list(range(1, len(versions) + 1))
    saved = sorted(int(o[1:]) for o in outcomes if o.startswith("v"))
    assert saved == versions[1:]  # every successful save is exactly one version, none lost or doubled
    with engine.connect() as connection:
        head = connection.execute(sa.select(rule_heads)).mappings().one()
    assert head["version"] == versions[-1]


# --- hits -------------------------------------------------------------------------------------------------------

def test_hits_are_logged_in_batches_idempotently_and_counted_by_window(store: RuleStore) -> None:
    rule_set = RuleSet.from_rules([make_rule(rule_id="cheap", condition="price < 50.0", version=2),
                                   make_rule(rule_id="vape", condition="category == 'vape'", mode="shadow")],
                                  VARIABLES)
    data = columns(price=[10.0, 80.0, 20.0], category=["vape", "vape", "toys"])
    hits = rule_set.evaluate(data, 3)
    rows = hit_rows(hits, entity_type="listing", entity_ids=["L1", "L2", "L3"], hit_at=BASE_TIME,
                    score_ids=["s1", "s2", "s3"], request_id="req-9")
    assert [(r.entity_id, r.rule_id, r.version, r.mode, r.score_id) for r in rows] == [
        ("L1", "cheap", 2, RuleMode.ACTIVE, "s1"), ("L1", "vape", 3, RuleMode.SHADOW, "s1"),
        ("L2", "vape", 3, RuleMode.SHADOW, "s2"), ("L3", "cheap", 2, RuleMode.ACTIVE, "s3")]
    assert store.record_hits(rows) == 4
    store.record_hits(rows)  # a retried batch is stored once
    later = [RuleHitRow(hit_at=BASE_TIME + timedelta(days=1), entity_type="listing", entity_id="L9",
                        rule_id="cheap", version=3, mode=RuleMode.ACTIVE)]
    store.record_hits(later)
    day = TimeWindow(BASE_TIME, BASE_TIME + timedelta(days=1))
    assert store.hit_counts(day) == [RuleHitCount("cheap", 2, RuleMode.ACTIVE, 2),
                                     RuleHitCount("vape", 3, RuleMode.SHADOW, 2)]
    two_days = TimeWindow(BASE_TIME, BASE_TIME + timedelta(days=2))
    assert store.hit_counts(two_days, rule_id="cheap") == [RuleHitCount("cheap", 2, RuleMode.ACTIVE, 2),
                                                          RuleHitCount("cheap", 3, RuleMode.ACTIVE, 1)]
    assert store.hit_counts(two_days, entity_type="account") == []
    with pytest.raises(ValueError, match="retired"):
        store.record_hits([RuleHitRow(hit_at=BASE_TIME, entity_type="listing", entity_id="L1", rule_id="x",
                                      version=1, mode=RuleMode.RETIRED)])
    with pytest.raises(ValueError, match="entity_ids"):
        hit_rows(hits, entity_type="listing", entity_ids=["L1"], hit_at=BASE_TIME)


def test_window_counts_read_the_index_not_the_history(store: RuleStore, engine: Engine) -> None:
    rng = np.random.default_rng(3)
    offsets = rng.integers(0, 200 * 24 * 3600, size=20_000)
    rows = [RuleHitRow(hit_at=BASE_TIME + timedelta(seconds=int(s)), entity_type="listing", entity_id=f"L{i}",
                       rule_id=f"rule-{i % 7}", version=1, mode=RuleMode.SHADOW) for i, s in enumerate(offsets)]
    store.record_hits(rows)
    window = TimeWindow(BASE_TIME + timedelta(days=100), BASE_TIME + timedelta(days=101))
    expected = sum(1 for r in rows if window.start <= r.hit_at < window.end)
    assert sum(c.hits for c in store.hit_counts(window)) == expected
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(f"ANALYZE {rule_hits.name}")
        plan = explain(connection, hit_count_query(window, entity_type="listing"))
    assert "ix_rule_hits_window" in plan, plan
    assert ("COVERING INDEX" in plan) if engine.dialect.name == "sqlite" else ("Seq Scan" not in plan), plan


def explain(connection: sa.Connection, query: sa.ClauseElement) -> str:
    """The query plan, as one line of text, on SQLite or PostgreSQL."""
    compiled = query.compile(connection, compile_kwargs={"render_postcompile": True})
    if connection.dialect.name == "sqlite":
        params: Any = tuple(compiled.params[name] for name in getattr(compiled, "positiontup", None) or ())
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
        return " | ".join(str(row[-1]) for row in rows)
    rows = connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
    return " | ".join(str(row[0]) for row in rows)
