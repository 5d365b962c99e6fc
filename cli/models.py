"""Model commands: train, evaluate, promote, and the alias history."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.common import DataOption, EntityOption, check_entity, one_line_errors
from triage.settings import TriageSettings

app = typer.Typer()


@app.command()
@one_line_errors
def train(
    entity: EntityOption,
    data: DataOption = Path("var/data/demo"),
    config: Annotated[Path | None, typer.Option(help="Training config JSON (training/config.py)")] = None,
    dask: Annotated[str | None, typer.Option("--dask", help="Dask scheduler address, e.g. tcp://host:8786")] = None,
) -> None:
    """Train a scorer on a time split, evaluate it next to the oracle, register it and promote it if it wins."""
    from training.config import TrainConfig
    from training.pipeline import train_entity

    settings = TriageSettings()
    cfg = TrainConfig.from_file(config) if config else TrainConfig()
    outcome = train_entity(settings, data, check_entity(entity), cfg, progress=sys.stderr.isatty(), scheduler=dask)
    typer.echo(f"run {outcome.run_id}: registered {outcome.model_name} version {outcome.version}")
    typer.echo(outcome.evaluation.table().to_string(float_format=lambda v: f"{v:.4f}"))
    if outcome.promoted:
        typer.echo(f"promoted version {outcome.version} to champion (was {outcome.champion_before or 'none'})")
    else:
        typer.echo(
            f"kept champion version {outcome.champion_before}: {cfg.promotion_metric} "
            f"{outcome.evaluation.model[cfg.promotion_metric]:.4f} vs champion {outcome.champion_metric:.4f}"
        )


@app.command()
@one_line_errors
def evaluate(
    entity: EntityOption,
    data: DataOption = Path("var/data/demo"),
    alias: Annotated[str, typer.Option(help="Registry alias to evaluate")] = "champion",
    config: Annotated[Path | None, typer.Option(help="Training config JSON (split and capacity)")] = None,
) -> None:
    """Evaluate a registered scorer on the data set's later (test) window, next to the oracle."""
    from mlflow import MlflowClient

    from models.registry import load_scorer
    from training.config import TrainConfig
    from training.datasets import load_entities
    from training.evaluation import evaluate_window
    from training.split import TimeSplitConfig, time_split

    settings = TriageSettings()
    cfg = TrainConfig.from_file(config) if config else TrainConfig()
    entity = check_entity(entity)
    loaded = load_scorer(MlflowClient(settings.tracking_uri), settings.model_name(entity), alias=alias)
    labelled = load_entities(data, entity)
    split = time_split(labelled, TimeSplitConfig(cfg.split.test_days, cfg.split.valid_days, cfg.split.gap_days))
    result = evaluate_window(loaded.artifact, labelled.subset(split.test), cfg.capacity(entity))
    typer.echo(f"{loaded.name} version {loaded.version} ({alias}), test window from {split.cutoff:%Y-%m-%d}:")
    typer.echo(result.table().to_string(float_format=lambda v: f"{v:.4f}"))


@app.command()
@one_line_errors
def promote(
    entity: EntityOption,
    version: Annotated[str, typer.Option(help="Model version to point the alias at")],
    alias: Annotated[str, typer.Option(help="Alias to move")] = "champion",
    reason: Annotated[str, typer.Option(help="Why (kept in the alias history and audit log)")] = "manual promotion",
) -> None:
    """Move an alias (default `champion`) to a registered version by hand; the move is recorded."""
    from mlflow import MlflowClient

    from models.registry import move_alias
    from stores.engine import make_engine
    from stores.migrate import upgrade

    settings = TriageSettings()
    client = MlflowClient(settings.tracking_uri)
    name = settings.model_name(check_entity(entity))
    client.get_model_version(name, version)  # a clear MLflow error for a version that does not exist
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        before, _ = move_alias(client, engine, name, alias, version, set_by=f"cli:{getpass.getuser()}", reason=reason)
    finally:
        engine.dispose()
    typer.echo(f"{name}@{alias}: {before or 'none'} -> {version}")


@app.command()
@one_line_errors
def aliases(
    entity: EntityOption,
    alias: Annotated[str | None, typer.Option(help="Only this alias")] = None,
) -> None:
    """Which version held which alias when (the recorded history; MLflow keeps only the current one)."""
    from loop.report import alias_periods_markdown
    from stores.alias_history import AliasHistory
    from stores.engine import make_engine
    from stores.migrate import upgrade

    settings = TriageSettings()
    name = settings.model_name(check_entity(entity))
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        typer.echo(alias_periods_markdown(name, AliasHistory(engine).periods(name, alias)))
    finally:
        engine.dispose()
