"""Shared fixtures: a small generated marketplace, a temporary MLflow store with both scorers trained and
promoted, and a real BentoML server over that store on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from training.config import LightGBMConfig, TrainConfig
from training.pipeline import TrainingOutcome, train_entity
from triage.entities import ENTITIES
from triage.settings import TriageSettings

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def small_train_config() -> TrainConfig:
    return TrainConfig(lightgbm=LightGBMConfig(max_rounds=200, num_leaves=15, learning_rate=0.1))


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthetic.config import GeneratorConfig
    from synthetic.generator import generate_marketplace
    from synthetic.io import write_dataset

    out = tmp_path_factory.mktemp("marketplace")
    write_dataset(generate_marketplace(GeneratorConfig(seed=11, n_accounts=6000, n_listings=40_000, days=90)), out)
    return out


@dataclass(frozen=True)
class TrainedStore:
    settings: TriageSettings
    dataset: Path
    outcomes: dict[str, TrainingOutcome]
    """One trained and promoted champion per scored entity type of the registry."""

    @property
    def listing(self) -> TrainingOutcome:
        return self.outcomes["listing"]

    @property
    def account(self) -> TrainingOutcome:
        return self.outcomes["account"]

    def env(self) -> dict[str, str]:
        return {"TRIAGE_HOME": str(self.settings.home), "TRIAGE_MLFLOW_TRACKING_URI": self.settings.tracking_uri}


@pytest.fixture(scope="session")
def trained_store(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedStore:
    settings = TriageSettings(home=tmp_path_factory.mktemp("triage-home"))
    config = small_train_config()
    outcomes = {entity: train_entity(settings, small_dataset, entity, config) for entity in ENTITIES.scored_names()}
    return TrainedStore(settings, small_dataset, outcomes)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_bento_server(
    env_extra: dict[str, str], log: Path, timeout: float = 120.0, wait_ready: bool = True
) -> RunningServer:
    port = free_port()
    # the tests of other features run without keys; tests/test_auth*.py switch auth on
    # one worker: tests address one process's state (its /reload, its /status counts); tests of several
    # workers pass their own BENTOML_CONFIG_OPTIONS
    env = os.environ | {"TRIAGE_AUTH": "off", "BENTOML_CONFIG_OPTIONS": "services.triage.workers=1"} | env_extra
    bentoml = Path(sys.executable).parent / "bentoml"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(bentoml), "serve", "serving.service:TriageService", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    if not wait_ready:
        return RunningServer(url, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return RunningServer(url, process, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(process)
    raise RuntimeError(f"bentoml serve not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    import psutil

    if process.poll() is not None:
        return
    # BentoML starts each worker in a session of its own: the process group does not reach them
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    os.killpg(process.pid, 15)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        child.kill()


@pytest.fixture(scope="session")
def bento_server(trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_bento_server(trained_store.env(), tmp_path_factory.mktemp("serve") / "serve.log")
    try:
        yield server
    finally:
        stop_server(server.process)


def wait_for_scoring_log(server: RunningServer, timeout: float = 30.0) -> None:
    """The scoring log is written off the request path: wait (bounded) until the service has drained it."""
    deadline = time.monotonic() + timeout
    log: dict[str, object] = {}
    while time.monotonic() < deadline:
        log = httpx.post(f"{server.url}/status", timeout=30).json()["scoring_log"]
        if log["backlog"] == 0 and log["in_flight"] == 0 and log["spooled"] == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"scoring log not drained after {timeout} s: {log}")
