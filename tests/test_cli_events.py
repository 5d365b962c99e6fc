"""`triage events`: the outbox's backlog per subscriber, delivering from the command line (to a real local
webhook receiver), and one-line errors without a delivery config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from delivery.config import DeliveryConfig
from stores.engine import make_engine
from stores.migrate import upgrade
from stores.outbox import Outbox
from tests.test_delivery_helpers import SECRET, Receiver, enqueue_holds

pytest_plugins = ("tests.test_delivery_helpers",)


def test_status_dispatch_and_purge(tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_HOME", str(tmp_path / "home"))
    config_file = tmp_path / "delivery.json"
    config_file.write_text(json.dumps({"subscribers": [{"kind": "webhook", "name": "marketplace",
                                                        "topics": ["listing.*"], "url": receiver.url,
                                                        "secret": SECRET, "timeout_seconds": 2}]}))
    engine = make_engine(f"sqlite:///{tmp_path / 'home' / 'triage.db'}")
    upgrade(engine)
    outbox = Outbox(engine, DeliveryConfig.from_file(config_file).subscriptions())
    events = enqueue_holds(engine, outbox, 5)
    runner = CliRunner()
    status = runner.invoke(app, ["events", "status", "--config", str(config_file)])
    assert status.exit_code == 0, status.output
    assert "marketplace" in status.output and " 5 " in status.output
    receiver.start()
    delivered = runner.invoke(app, ["events", "dispatch", "--once", "--config", str(config_file)])
    assert delivered.exit_code == 0, delivered.output
    assert "delivered 5 event(s)" in delivered.output and receiver.unique == set(events)
    assert outbox.backlog("marketplace").pending == 0
    purged = runner.invoke(app, ["events", "purge", "--older-than-days", "0", "--config", str(config_file)])
    assert purged.exit_code == 0 and "purged 5 delivered event(s)" in purged.output


def test_without_a_delivery_config_the_command_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_HOME", str(tmp_path))
    monkeypatch.delenv("TRIAGE_DELIVERY_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["events", "status"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: no delivery config")
