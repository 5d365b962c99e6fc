"""Runtime settings: one object, read from the environment (`TRIAGE_*`) at the edge (CLI, service start-up)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class TriageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", extra="ignore")

    home: Path = Field(Path("var"), description="Folder for the embedded stores (MLflow SQLite, artifacts, logs)")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking/registry URI; default: SQLite file under `home`"
    )
    experiment: str = "marketplace-triage"
    listing_model_name: str = "triage-listing-scorer"
    account_model_name: str = "triage-account-scorer"
    serving_alias: str = Field("champion", description="Registry alias the service loads")
    store_url: str | None = Field(None, description="SQLAlchemy URL of the scoring log and decisions store")
    auth: Literal["api_keys", "off"] = Field(
        "api_keys", description="api_keys: every request needs a key with the right role (docs/security.md); "
        "off: local development only"
    )
    api_key_pepper: SecretStr | None = Field(
        None, description="Server secret mixed into stored key hashes (HMAC); changing it invalidates all keys"
    )
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

    def model_name(self, entity: str) -> str:
        names = {"listing": self.listing_model_name, "account": self.account_model_name}
        if entity not in names:
            raise ValueError(f"unknown entity {entity!r}: expected one of {sorted(names)}")
        return names[entity]
