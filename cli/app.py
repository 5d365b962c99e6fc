"""`triage`: the command line for data, training, evaluation, promotion and the demo. A thin layer:
every command parses its options, builds the settings once, and calls a plain function."""

from __future__ import annotations

import functools
import getpass
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from triage.settings import TriageSettings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_show_locals=False)
F = TypeVar("F", bound=Callable[..., Any])

EntityOption = Annotated[str, typer.Option("--entity", "-e", help="listing or account")]
DataOption = Annotated[Path, typer.Option("--data", "-d", help="Data set folder (see docs/data-contract.md)")]


@app.callback()
def _quiet_mlflow() -> None:
    # a progress bar per model download is noise in a CLI that prints its own results
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class UserError(Exception):
    """A problem the user can fix; printed as one line without a traceback."""


def _one_line_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException
        from pydantic import ValidationError

        from models.registry import ModelNotFoundError

        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            typer.echo(f"error: {where}: {first['msg']}", err=True)
        except (UserError, FileNotFoundError, ValueError, LookupError, ModelNotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
        except MlflowException as exc:
            typer.echo(f"error: MLflow: {exc.message}", err=True)
        raise typer.Exit(2)

    return wrapper  # type: ignore[return-value]


def _check_entity(entity: str) -> str:
    if entity not in ("listing", "account"):
        raise UserError(f"--entity must be 'listing' or 'account', got {entity!r}")
    return entity


@app.command()
@_one_line_errors
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the data set to")] = Path("var/data/demo"),
    listings: Annotated[int, typer.Option(min=100, help="Number of listings")] = 200_000,
    accounts: Annotated[int, typer.Option(min=50, help="Number of accounts")] = 20_000,
    days: Annotated[int, typer.Option(min=30, help="Days of marketplace history")] = 120,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data)")] = 1,
) -> None:
    """Generate a synthetic marketplace (accounts, identifiers, listings, hidden ground truth) as Parquet."""
    from synthetic.config import GeneratorConfig
    from synthetic.generator import generate_marketplace
    from synthetic.io import write_dataset

    config = GeneratorConfig(seed=seed, n_accounts=accounts, n_listings=listings, days=days)
    data = generate_marketplace(config, progress=sys.stderr.isatty())
    write_dataset(data, out)
    typer.echo(f"wrote {len(data.accounts):,} accounts and {len(data.listings):,} listings to {out}")


@app.command()
@_one_line_errors
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
    outcome = train_entity(settings, data, _check_entity(entity), cfg, progress=sys.stderr.isatty(), scheduler=dask)
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
@_one_line_errors
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
    entity = _check_entity(entity)
    loaded = load_scorer(MlflowClient(settings.tracking_uri), settings.model_name(entity), alias=alias)
    labelled = load_entities(data, entity)
    split = time_split(labelled, TimeSplitConfig(cfg.split.test_days, cfg.split.valid_days, cfg.split.gap_days))
    result = evaluate_window(loaded.artifact, labelled.subset(split.test), cfg.review_capacity_per_day[entity])
    typer.echo(f"{loaded.name} version {loaded.version} ({alias}), test window from {split.cutoff:%Y-%m-%d}:")
    typer.echo(result.table().to_string(float_format=lambda v: f"{v:.4f}"))


@app.command()
@_one_line_errors
def promote(
    entity: EntityOption,
    version: Annotated[str, typer.Option(help="Model version to point the alias at")],
    alias: Annotated[str, typer.Option(help="Alias to move")] = "champion",
    reason: Annotated[str, typer.Option(help="Why (kept in the alias history and audit log)")] = "manual promotion",
) -> None:
    """Move an alias (default `champion`) to a registered version by hand; the move is recorded."""
    from mlflow import MlflowClient

    from training.aliases import move_alias

    settings = TriageSettings()
    client = MlflowClient(settings.tracking_uri)
    name = settings.model_name(_check_entity(entity))
    client.get_model_version(name, version)  # a clear MLflow error for a version that does not exist
    before = move_alias(settings, client, name, alias, version, set_by=f"cli:{getpass.getuser()}", reason=reason)
    typer.echo(f"{name}@{alias}: {before or 'none'} -> {version}")


@app.command("score-demo")
@_one_line_errors
def score_demo(
    data: DataOption = Path("var/data/demo"),
    url: Annotated[str, typer.Option(help="Base URL of the running service")] = "http://127.0.0.1:3000",
    listings: Annotated[int, typer.Option(help="Fresh listings to score")] = 500,
    accounts: Annotated[int, typer.Option(help="Fresh accounts to score")] = 100,
    top: Annotated[int, typer.Option(help="Queue rows to print")] = 15,
    api_key: Annotated[str | None, typer.Option(envvar="TRIAGE_API_KEY", help="API key (role scorer or admin)")] = None,
) -> None:
    """Score a fresh batch from the latest days through the HTTP API and print the top of the queue."""
    from triage.demo import print_queue, score_fresh_batch

    queue = score_fresh_batch(data, url, n_listings=listings, n_accounts=accounts, api_key=api_key)
    print_queue(queue, top)


@app.command()
@_one_line_errors
def simulate(
    data: DataOption = Path("var/data/demo"),
    investigators: Annotated[int, typer.Option(min=1, help="Investigators on shift each day")] = 10,
    shift_hours: Annotated[float, typer.Option(min=0.5, max=24, help="Hours per shift")] = 8.0,
    productive_share: Annotated[float, typer.Option(min=0.05, max=1.0, help="Share of a shift spent reviewing")] = 0.75,
    policy_config: Annotated[Path | None, typer.Option(help="Queue policy JSON/YAML (policy/config.py)")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the table and plot")] = Path("var/reports/simulation"),
) -> None:
    """Replay the data set's later window day by day through the queue with the champions' scores and compare
    FIFO, a rules baseline, probability only, expected loss and the oracle at the same capacity."""
    from mlflow import MlflowClient

    from models.registry import load_scorer
    from policy import CapacityConfig, QueuePolicyConfig
    from training.config import TrainConfig
    from training.pipeline import configure_mlflow
    from training.queue_simulation import log_simulation
    from training.queue_simulation import simulate as run_simulation

    settings = TriageSettings()
    client = MlflowClient(settings.tracking_uri)
    artifacts = {e: load_scorer(client, settings.model_name(e), alias=settings.serving_alias).artifact
                 for e in ("listing", "account")}
    capacity = CapacityConfig(investigators=investigators, shift_hours=shift_hours, productive_share=productive_share)
    queue_config = QueuePolicyConfig.from_file(policy_config) if policy_config else QueuePolicyConfig()
    outcome = run_simulation(data, artifacts, TrainConfig().split, capacity, queue_config,
                             progress=sys.stderr.isatty(), out_dir=out)
    configure_mlflow(settings)
    run_id = log_simulation(outcome, capacity, queue_config)
    columns = ["loss_prevented", "loss_prevented_share", "violations_caught", "precision", "sla_breaches",
               "reviewer_hours", "share_of_oracle_prevented", "multiple_of_fifo_prevented"]
    shown = outcome.table[[c for c in columns if c in outcome.table.columns]]
    typer.echo(f"{outcome.days} days from {outcome.start:%Y-%m-%d}, {investigators} investigators x {shift_hours} h:")
    typer.echo(shown.to_string(float_format=lambda v: f"{v:,.3f}"))
    typer.echo(f"plot: {outcome.plot}   MLflow run: {run_id}")


@app.command()
@_one_line_errors
def monitor(
    entity: EntityOption = "listing",
    data: Annotated[Path | None, typer.Option(help="Data set: reference = training, current = later window")] = None,
    days: Annotated[int, typer.Option(min=1, help="Without --data: the last N days of scoring traffic")] = 7,
    alias: Annotated[str, typer.Option(help="Registry alias whose reference is compared")] = "champion",
    out: Annotated[Path, typer.Option(help="HTML report path")] = Path("var/reports/monitor.html"),
    fail_on_alert: Annotated[bool, typer.Option(help="Exit 1 when an alert threshold is crossed")] = False,
) -> None:
    """Drift (PSI per feature and score), precision of reviewed cases by tier and week, SLA attainment and queue
    age, with alerts; an HTML report with plots, logged to MLflow, and the drift gauges for the service."""
    from triage.reports_cli import run_monitor_command

    alerts = run_monitor_command(TriageSettings(), _check_entity(entity), alias, data, days, out, sys.stderr.isatty())
    if alerts and fail_on_alert:
        raise typer.Exit(1)


@app.command()
@_one_line_errors
def rca(
    entity: EntityOption = "listing",
    data: Annotated[Path | None, typer.Option(help="Data set (its later window); default: the stores")] = None,
    days: Annotated[int, typer.Option(min=1, help="Without --data: the last N days of decisions")] = 30,
    alias: Annotated[str, typer.Option(help="Registry alias whose contributions explain the cases")] = "champion",
    out: Annotated[Path, typer.Option(help="Folder for rca.html, rca.md and plots")] = Path("var/reports/rca"),
) -> None:
    """Root causes of confirmed violations: segments by lift and loss, the model's drivers over time, and
    candidate rules with their backtested precision, recall, coverage and loss caught."""
    from triage.reports_cli import run_rca_command

    run_rca_command(TriageSettings(), _check_entity(entity), alias, data, days, out, sys.stderr.isatty())


@app.command()
@_one_line_errors
def retrain(
    entity: EntityOption,
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Base data set to train on as well")] = None,
    window_days: Annotated[int, typer.Option(min=1, help="Recent days of decisions held out to compare on")] = 14,
    config: Annotated[Path | None, typer.Option(help="Training config JSON (metric, margin, LightGBM)")] = None,
) -> None:
    """Retrain from logged feature vectors joined to reviewer decisions (point in time) plus the base data;
    compare with the champion on the same recent window; promote only if the challenger wins by the
    configured metric and margin, else register it as `challenger` (shadow)."""
    from training.config import TrainConfig
    from training.retrain import retrain as run_retrain

    cfg = TrainConfig.from_file(config) if config else TrainConfig()
    report = run_retrain(TriageSettings(), _check_entity(entity), data, cfg, window_days,
                         progress=sys.stderr.isatty())
    typer.echo(report.to_markdown())


@app.command()
@_one_line_errors
def compare(
    entity: EntityOption,
    since: Annotated[datetime, typer.Option(help="Window start, ISO 8601 (UTC if no zone)")],
    until: Annotated[datetime | None, typer.Option(help="Window end (default: now)")] = None,
) -> None:
    """Champion against the shadow challenger on decided traffic scored in the window."""
    from stores.records import TimeWindow, utc_now
    from training.compare import compare_shadow

    def aware(t: datetime) -> datetime:
        return t if t.tzinfo else t.replace(tzinfo=UTC)

    window = TimeWindow(aware(since), aware(until) if until else utc_now())
    typer.echo(compare_shadow(TriageSettings(), _check_entity(entity), window).to_markdown())


@app.command()
@_one_line_errors
def aliases(
    entity: EntityOption,
    alias: Annotated[str | None, typer.Option(help="Only this alias")] = None,
) -> None:
    """Which version held which alias when (the recorded history; MLflow keeps only the current one)."""
    from training.retrain import alias_history

    settings = TriageSettings()
    typer.echo(alias_history(settings, settings.model_name(_check_entity(entity)), alias).to_markdown())


@app.command("score-batch")
@_one_line_errors
def score_batch(
    input: Annotated[Path, typer.Option("--input", "-i", help="Parquet file or folder of raw records")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet folder to write the scores to")],
    entity: EntityOption = "listing",
    accounts: Annotated[Path | None, typer.Option(help="accounts.parquet, to add the seller context")] = None,
    dask: Annotated[str | None, typer.Option("--dask", help="Dask scheduler address (default: local threads)")] = None,
    blocksize: Annotated[str, typer.Option(help="Target partition size")] = "64MiB",
    partitions: Annotated[int | None, typer.Option(min=1, help="At least this many partitions")] = None,
    alias: Annotated[str, typer.Option(help="Registry alias to score with")] = "champion",
) -> None:
    """Score a Parquet data set offline through dask.dataframe with a registered scorer."""
    from mlflow import MlflowClient

    from models.batch import score_parquet
    from models.registry import load_scorer

    settings = TriageSettings()
    scorer = load_scorer(MlflowClient(settings.tracking_uri), settings.model_name(_check_entity(entity)), alias=alias)
    result = score_parquet(scorer.artifact, input, output, client=dask, blocksize=blocksize, accounts_path=accounts,
                           progress=sys.stderr.isatty(), min_partitions=partitions)
    typer.echo(f"scored {result.rows:,} rows into {output} ({result.partitions} partitions) with {scorer.uri}")


keys_app = typer.Typer(no_args_is_help=True, help="API keys: create, list, revoke, rotate (stored hashed).")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
@_one_line_errors
def keys_create(
    role: Annotated[str, typer.Option(help="scorer, reviewer or admin")],
    name: Annotated[str, typer.Option(help="Who or what holds the key")],
) -> None:
    """Create a key; the secret is printed once and never stored."""
    from triage.keys import create_key

    key_id, secret = create_key(TriageSettings(), role, name)
    typer.echo(f"key {key_id} ({role}, {name}): {secret}")


@keys_app.command("list")
@_one_line_errors
def keys_list() -> None:
    """Keys with their role and state (never the secrets)."""
    from triage.keys import list_keys

    for key in list_keys(TriageSettings()):
        typer.echo(str(key))


@keys_app.command("revoke")
@_one_line_errors
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (tk_<id>_...)")]) -> None:
    """Revoke a key; the running service stops accepting it within seconds."""
    from triage.keys import revoke_key

    typer.echo(f"revoked {revoke_key(TriageSettings(), key_id)} secret(s) of {key_id}")


@keys_app.command("rotate")
@_one_line_errors
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="The key id")],
    grace_minutes: Annotated[int, typer.Option(min=0, help="How long the old secret keeps working")] = 0,
) -> None:
    """A new secret for the same key id (the old one valid for the grace period); no restart needed."""
    from datetime import timedelta

    from triage.keys import rotate_key

    typer.echo(rotate_key(TriageSettings(), key_id, timedelta(minutes=grace_minutes)))


@app.command()
@_one_line_errors
def audit(
    since_hours: Annotated[float, typer.Option(min=0, help="How far back")] = 24.0,
    actor: Annotated[str | None, typer.Option(help="Key id or cli:<user>")] = None,
    action: Annotated[str | None, typer.Option(help="scored, decided, reloaded, alias_set, ...")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most entries")] = 100,
) -> None:
    """Who scored, decided, reloaded or promoted what, when, with which model version."""
    from datetime import timedelta

    from triage.keys import query_audit

    for entry in query_audit(TriageSettings(), since=timedelta(hours=since_hours), actor=actor, action=action,
                             limit=limit):
        typer.echo(str(entry))


@app.command()
def settings() -> None:
    """Print the effective settings (from TRIAGE_* environment variables and defaults)."""
    s = TriageSettings()
    typer.echo(json.dumps(s.model_dump(mode="json") | {"tracking_uri": s.tracking_uri}, indent=2))


if __name__ == "__main__":
    app()
