"""Runtime settings: one object, read from the environment (`TRIAGE_*`) at the edge (CLI, service start-up).

Per-entity settings are maps keyed by entity type (`triage.entities`), never a field per entity:
`TRIAGE_MODEL_NAMES='{"listing": "my-listing-model"}'` or `TRIAGE_MODEL_NAMES__LISTING=my-listing-model`.
An entity type missing from a map takes the registry's default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from triage.entities import ENTITIES


class TriageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", extra="ignore", env_nested_delimiter="__")

    home: Path = Field(Path("var"), description="Folder for the embedded stores (MLflow SQLite, artifacts, logs)")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking/registry URI; default: SQLite file under `home`"
    )
    experiment: str = "marketplace-triage"
    model_names: dict[str, str] = Field(
        default_factory=dict, description="Registered model name per entity type; default: the registry's"
    )
    serving_alias: str = Field("champion", description="Registry alias the service loads")
    store_url: str | None = Field(None, description="SQLAlchemy URL of the scoring log and decisions store")
    auth: Literal["api_keys", "off"] = Field(
        "api_keys", description="api_keys: every request needs a key with the right role (docs/security.md); "
        "off: local development only"
    )
    api_key_pepper: SecretStr | None = Field(
        None, description="Server secret mixed into stored key hashes (HMAC); changing it invalidates all keys"
    )
    auth_max_failures: int = Field(
        10, ge=1, description="Failed authentications a client network or key id may make in a burst, per worker, "
        "before 429 (docs/security.md)")
    auth_failure_window_seconds: float = Field(
        60.0, gt=0, description="The window over which that burst refills; a whole window without failures resets it")
    # NoDecode: the environment variable is a comma-separated list, not JSON (the validator splits it)
    trusted_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins a browser sign-in is also accepted from (behind a proxy that "
        "rewrites Host), comma-separated: https://review.example.com,https://other.example")
    delivery_config: Path | None = Field(
        None, description="Event subscribers (signed webhooks, NATS JetStream, RabbitMQ) and how events are "
        "delivered: a JSON file (docs/events.md); none: events wait in the outbox")
    dispatch: bool = Field(True, description="Each service worker runs a delivery dispatcher (safe with several)")
    outbox_retention_days: float = Field(
        30.0, gt=0, description="Delivered events older than this are purged from the outbox")
    shadow: bool = Field(True, description="Also score with the `challenger` alias (logged, never returned)")
    reload_poll_seconds: float = Field(
        30.0, ge=0, description="How often the service checks the registry for moved aliases; 0 turns polling off"
    )
    reasons_attribution: Literal["path", "treeshap"] = Field(
        "path", description="How the service attributes scores to reasons: path (per-leaf path attribution, "
        "~0.2 ms/row, approximate) or treeshap (exact TreeSHAP, ~7-9 ms/row); models/attribution.py"
    )
    queue_window_days: int = Field(14, ge=1, description="How far back the queue looks for open cases")
    policy_config: Path | None = Field(None, description="Queue policy JSON/YAML (policy/config.py); default built in")

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def artifact_location(self) -> str:
        return (self.home / "mlartifacts").resolve().as_uri()

    @property
    def database_url(self) -> str:
        return self.store_url or f"sqlite:///{(self.home / 'triage.db').resolve()}"

    @property
    def spool_dir(self) -> Path:
        return (self.home / "spool").resolve()

    @property
    def monitor_dir(self) -> Path:
        """Where `triage monitor` leaves the latest drift figures for the service's Prometheus gauges."""
        return self.home / "monitor"

    def gauges_file(self, entity: str) -> Path:
        return self.monitor_dir / f"{entity}-gauges.json"

    @field_validator("trusted_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("model_names")
    @classmethod
    def _known_entities(cls, names: dict[str, str]) -> dict[str, str]:
        for entity in names:
            ENTITIES.scored(entity)
        return names

    def model_name(self, entity: str) -> str:
        """The registered model name of a scored entity type (ValueError for an unknown one)."""
        spec = ENTITIES.scored(entity)
        name = self.model_names.get(entity) or spec.model_name or f"triage-{entity}-scorer"
        return name

    def model_name_map(self) -> dict[str, str]:
        return {entity: self.model_name(entity) for entity in ENTITIES.scored_names()}
