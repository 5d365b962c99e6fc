"""The closed loop end to end, on SQLite and on PostgreSQL: the service scores and logs, reviewers decide
through `/feedback`, `retrain` builds a challenger from the logged vectors joined to the decisions, the
gate promotes it, and the running service answers with the new version, with no failed request during
the switch."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from mlflow import MlflowClient

from features.listing import LISTING_FEATURE_SET
from loop.retrain import retrain
from models.registry import CHAMPION, alias_version, move_alias
from serving.client import ScoringClient, records_for_api
from stores.alias_history import AliasHistory
from stores.engine import make_engine
from stores.migrate import upgrade
from tests.conftest import TrainedStore, small_train_config, start_bento_server, stop_server, wait_for_scoring_log
from tests.conftest_stores import create_postgres_database, drop_postgres_database, postgres_url, random_database_name
from tests.test_hot_reload_e2e import Traffic
from training.config import LightGBMConfig
from training.datasets import load_entities
from training.pipeline import train_entity
from training.split import TimeSplitConfig, time_split
from triage.settings import TriageSettings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
pytest_plugins = ("tests.conftest_stores",)


@dataclass
class LoopStore:
    settings: TriageSettings
    weak_version: str


@pytest.fixture(params=["sqlite", "postgresql"])
def loop_store(
    request: pytest.FixtureRequest, trained_store: TrainedStore, tmp_path: Path
) -> Iterator[LoopStore]:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(Path(trained_store.settings.home) / "mlflow.db", home / "mlflow.db")
    store_url = None
    if request.param == "postgresql":
        admin = request.getfixturevalue("postgres_admin")
        name = random_database_name()
        create_postgres_database(admin, name)
        store_url = postgres_url(admin[0], name)
    settings = TriageSettings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}", store_url=store_url)
    # a deliberately weak champion, so that a challenger trained on more data has a real margin to win by
    weak = small_train_config().model_copy(update={"lightgbm": LightGBMConfig(max_rounds=3, num_leaves=2)})
    outcome = train_entity(settings, trained_store.dataset, "listing", weak)
    client = MlflowClient(settings.tracking_uri)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    move_alias(client, engine, outcome.model_name, CHAMPION, outcome.version, set_by="test", reason="weak start")
    engine.dispose()
    try:
        yield LoopStore(settings, outcome.version)
    finally:
        if store_url is not None:
            drop_postgres_database(request.getfixturevalue("postgres_admin"), store_url.rsplit("/", 1)[1])


def test_score_decide_retrain_promote_and_serve(loop_store: LoopStore, trained_store: TrainedStore) -> None:
    settings = loop_store.settings
    env = {"TRIAGE_HOME": str(settings.home), "TRIAGE_MLFLOW_TRACKING_URI": settings.tracking_uri,
           "TRIAGE_RELOAD_POLL_SECONDS": "0.5"}
    if settings.store_url:
        env["TRIAGE_STORE_URL"] = settings.store_url
    server = start_bento_server(env, settings.home / "serve.log")
    try:
        data = load_entities(trained_store.dataset, "listing")
        later = data.subset(time_split(data, TimeSplitConfig()).test)
        records = records_for_api(later.frame, LISTING_FEATURE_SET)
        with ScoringClient(server.url) as client:
            results = client.score("listing", records, reasons="none")
        assert {r["model_version"] for r in results} == {loop_store.weak_version}

        # reviewers decide the cases the weak champion ranks highest, with the true outcome
        truth = dict(zip(later.frame["listing_id"], later.label, strict=True))
        order = np.argsort([-r["expected_loss"] for r in results])[:600]
        time.sleep(1.0)  # decisions come after the scores they are about
        for i in order:
            result = results[i]
            decision = {"decision_id": str(uuid.uuid4()), "case_id": f"listing:{result['entity_id']}",
                        "entity_type": "listing", "entity_id": result["entity_id"],
                        "outcome": "violation" if truth[result["entity_id"]] else "no_violation",
                        "reviewer_id": "r-loop", "decided_at": datetime.now(UTC).isoformat(),
                        "model_name": settings.model_name("listing"), "model_version": result["model_version"]}
            response = httpx.post(f"{server.url}/feedback", json={"decision": decision}, timeout=30)
            assert response.status_code == 201, response.text
        wait_for_scoring_log(server)

        traffic = Traffic(server.url, records[:20])
        thread = threading.Thread(target=traffic.run)
        thread.start()
        try:
            report = retrain(settings, "listing", trained_store.dataset, small_train_config(), window_days=1)
            assert report.promoted, report.to_markdown()
            new_version = report.challenger_version
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and new_version not in traffic.versions[-5:]:
                time.sleep(0.1)
            settled = len(traffic.versions)
            while len(traffic.versions) < settled + 30 and thread.is_alive():
                time.sleep(0.05)
        finally:
            traffic.stop.set()
            thread.join(timeout=30)
        assert traffic.failures == []
        switch = traffic.versions.index(new_version)
        assert set(traffic.versions[:switch]) == {loop_store.weak_version}
        assert set(traffic.versions[switch:]) == {new_version}
        registry = MlflowClient(settings.tracking_uri)
        assert alias_version(registry, settings.model_name("listing"), CHAMPION) == new_version
        engine = make_engine(settings.database_url)
        assert AliasHistory(engine).champion_at(settings.model_name("listing"), datetime.now(UTC)) == new_version
        engine.dispose()
    finally:
        stop_server(server.process)
