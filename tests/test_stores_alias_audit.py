"""AliasHistory (which version was champion when) and AuditLog."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from stores.alias_history import AliasHistory
from stores.audit_log import AuditLog
from stores.records import TimeWindow
from tests.conftest_stores import BASE_TIME

pytest_plugins = ("tests.conftest_stores",)

HOUR = timedelta(hours=1)


def test_champion_at_follows_alias_moves(engine: Engine) -> None:
    history = AliasHistory(engine)
    history.record("listing-risk", "champion", "1", set_by="alice", reason="first model", set_at=BASE_TIME)
    history.record("listing-risk", "challenger", "2", set_by="alice", reason="shadow", set_at=BASE_TIME + HOUR)
    history.record("listing-risk", "champion", "2", set_by="bob", reason="won the A/B", set_at=BASE_TIME + 3 * HOUR)
    history.record("listing-risk", "challenger", None, set_by="bob", reason="promoted", set_at=BASE_TIME + 3 * HOUR)
    history.record("account-risk", "champion", "7", set_by="carol", reason="other model", set_at=BASE_TIME)

    assert history.champion_at("listing-risk", BASE_TIME - HOUR) is None
    assert history.champion_at("listing-risk", BASE_TIME) == "1"
    assert history.champion_at("listing-risk", BASE_TIME + 3 * HOUR - timedelta(microseconds=1)) == "1"
    assert history.champion_at("listing-risk", BASE_TIME + 3 * HOUR) == "2"
    assert history.version_at("listing-risk", "challenger", BASE_TIME + 2 * HOUR) == "2"
    assert history.version_at("listing-risk", "challenger", BASE_TIME + 4 * HOUR) is None
    assert history.champion_at("account-risk", BASE_TIME + 4 * HOUR) == "7"

    moves = history.history("listing-risk")
    assert [(m.alias, m.version, m.set_by) for m in moves] == [
        ("champion", "1", "alice"),
        ("challenger", "2", "alice"),
        ("champion", "2", "bob"),
        ("challenger", None, "bob"),
    ]
    assert moves[0].set_at == BASE_TIME and moves[0].reason == "first model"
    assert [m.version for m in history.history("listing-risk", alias="champion")] == ["1", "2"]


def test_latest_move_wins_on_the_same_timestamp(engine: Engine) -> None:
    history = AliasHistory(engine)
    history.record("m", "champion", "1", set_by="a", reason="r", set_at=BASE_TIME)
    history.record("m", "champion", "2", set_by="a", reason="rollback of 1", set_at=BASE_TIME)
    assert history.champion_at("m", BASE_TIME) == "2"


def test_alias_history_validates_inputs(engine: Engine) -> None:
    history = AliasHistory(engine)
    with pytest.raises(ValueError, match="set_by"):
        history.record("m", "champion", "1", set_by="", reason="r")
    with pytest.raises(ValueError, match="set_at"):
        history.record("m", "champion", "1", set_by="a", reason="r", set_at=BASE_TIME.replace(tzinfo=None))


def test_audit_log_round_trip_and_query(engine: Engine) -> None:
    audit = AuditLog(engine)
    first = audit.record(
        "alice",
        "promote",
        "listing-risk",
        model_version="2",
        detail={"from": "1", "auc": 0.91, "tags": ("a",)},
        at=BASE_TIME,
    )
    audit.record("bob", "threshold_change", "listing-risk", detail={"tier": "high", "to": 0.8}, at=BASE_TIME + HOUR)
    audit.record("alice", "promote", "account-risk", model_version="7", at=BASE_TIME + 2 * HOUR)

    assert first.detail == {"from": "1", "auc": 0.91, "tags": ["a"]}
    newest_first = audit.query()
    assert [entry.action for entry in newest_first] == ["promote", "threshold_change", "promote"]
    assert newest_first[-1] == first
    assert [e.target for e in audit.query(actor="alice", newest_first=False)] == ["listing-risk", "account-risk"]
    assert [e.actor for e in audit.query(action="threshold_change")] == ["bob"]
    assert [e.model_version for e in audit.query(target="listing-risk", model_version="2")] == ["2"]
    assert len(audit.query(window=TimeWindow(BASE_TIME, BASE_TIME + 2 * HOUR))) == 2
    assert len(audit.query(limit=1)) == 1


def test_audit_detail_must_be_json(engine: Engine) -> None:
    audit = AuditLog(engine)
    with pytest.raises(ValueError, match="detail"):
        audit.record("alice", "promote", "m", detail={"auc": math.nan})
    with pytest.raises(ValueError, match="detail"):
        audit.record("alice", "promote", "m", detail={"when": BASE_TIME})
    assert audit.query() == []
