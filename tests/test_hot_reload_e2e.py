"""Hot reload: requests keep flowing while the `champion` alias moves; none fails and responses switch to
the new version. Also the shadow challenger: scored and logged, never returned."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from features.listing import LISTING_FEATURE_SET
from models.registry import CHALLENGER, CHAMPION, set_alias
from serving.client import records_for_api
from stores.engine import make_engine
from stores.records import TimeWindow
from stores.scoring_log import ScoringLogReader
from tests.conftest import RunningServer, TrainedStore, small_train_config, start_bento_server, stop_server
from training.config import LightGBMConfig
from training.datasets import load_entities
from training.pipeline import train_entity
from triage.settings import TriageSettings

pytestmark = pytest.mark.e2e


@dataclass
class ReloadSetup:
    settings: TriageSettings
    server: RunningServer
    new_version: str
    records: list[dict]  # type: ignore[type-arg]


@pytest.fixture(scope="module")
def reload_setup(trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReloadSetup]:
    # a copy of the store, so moving aliases here cannot disturb other tests' server
    home = tmp_path_factory.mktemp("reload-home")
    shutil.copy(Path(trained_store.settings.home) / "mlflow.db", home / "mlflow.db")
    settings = TriageSettings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    config = small_train_config().model_copy(update={"lightgbm": LightGBMConfig(max_rounds=60, num_leaves=7, seed=3)})
    outcome = train_entity(settings, trained_store.dataset, "listing", config)
    client = MlflowClient(settings.tracking_uri)
    set_alias(client, outcome.model_name, CHAMPION, "1")  # start from version 1 whatever the gate decided
    records = records_for_api(load_entities(trained_store.dataset, "listing").frame.tail(20), LISTING_FEATURE_SET)
    env = {"TRIAGE_HOME": str(home), "TRIAGE_MLFLOW_TRACKING_URI": settings.tracking_uri,
           "TRIAGE_RELOAD_POLL_SECONDS": "0.5"}
    server = start_bento_server(env, home / "serve.log")
    try:
        yield ReloadSetup(settings, server, outcome.version, records)
    finally:
        stop_server(server.process)


@dataclass
class Traffic:
    url: str
    records: list[dict]  # type: ignore[type-arg]
    versions: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, max_seconds: float = 90.0) -> None:
        deadline = time.monotonic() + max_seconds
        with httpx.Client(base_url=self.url, timeout=10) as client:
            i = 0
            while not self.stop.is_set() and time.monotonic() < deadline:
                body = {"listings": [self.records[i % len(self.records)]], "reasons": "none"}
                try:
                    response = client.post("/score_listings", json=body)
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code}: {response.text[:200]}")
                    else:
                        self.versions.append(response.json()["model"]["version"])
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                i += 1


def test_alias_move_swaps_models_with_no_failed_request(reload_setup: ReloadSetup) -> None:
    traffic = Traffic(reload_setup.server.url, reload_setup.records)
    thread = threading.Thread(target=traffic.run)
    thread.start()
    try:
        while len(traffic.versions) < 50 and thread.is_alive():
            time.sleep(0.05)
        client = MlflowClient(reload_setup.settings.tracking_uri)
        set_alias(client, reload_setup.settings.model_name("listing"), CHAMPION, reload_setup.new_version)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and reload_setup.new_version not in traffic.versions[-5:]:
            time.sleep(0.1)
        settled = len(traffic.versions)
        while len(traffic.versions) < settled + 50 and thread.is_alive():
            time.sleep(0.05)
    finally:
        traffic.stop.set()
        thread.join(timeout=30)
    assert traffic.failures == []
    assert traffic.versions[0] == "1" and traffic.versions[-1] == reload_setup.new_version
    switch = traffic.versions.index(reload_setup.new_version)
    # one switch, never back: every response after the first new one carries the new version
    assert set(traffic.versions[switch:]) == {reload_setup.new_version}
    assert set(traffic.versions[:switch]) == {"1"}


def test_admin_reload_and_shadow_challenger(reload_setup: ReloadSetup) -> None:
    url = reload_setup.server.url
    client = MlflowClient(reload_setup.settings.tracking_uri)
    name = reload_setup.settings.model_name("listing")
    set_alias(client, name, CHAMPION, "1")
    set_alias(client, name, CHALLENGER, reload_setup.new_version)
    status = httpx.post(f"{url}/reload", timeout=60).json()  # no waiting for the poll
    assert status["models"]["listing@champion"] == "1"
    assert status["models"]["listing@challenger"] == reload_setup.new_version
    started = datetime.now(UTC)
    response = httpx.post(f"{url}/score_listings", json={"listings": reload_setup.records}, timeout=30)
    assert response.status_code == 200 and response.json()["model"]["version"] == "1"
    reader = ScoringLogReader(make_engine(reload_setup.settings.database_url))
    window = TimeWindow(started - timedelta(seconds=1), datetime.now(UTC) + timedelta(minutes=5))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        shadow = reader.scores_in_window(window, entity_type="listing", served=False)
        if len(shadow) >= len(reload_setup.records):
            break
        time.sleep(0.2)
    assert len(shadow) == len(reload_setup.records)
    assert {r.model_alias for r in shadow} == {"challenger"}
    assert {r.model_version for r in shadow} == {reload_setup.new_version}
