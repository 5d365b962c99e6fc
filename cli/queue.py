"""Queue commands: the demo's scoring over HTTP and the queue simulation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.common import DataOption, UserError, check_entity, one_line_errors
from triage.entities import ENTITIES
from triage.settings import TriageSettings

app = typer.Typer()


@app.command("score-demo")
@one_line_errors
def score_demo(
    data: DataOption = Path("var/data/demo"),
    url: Annotated[str, typer.Option(help="Base URL of the running service")] = "http://127.0.0.1:3000",
    fresh: Annotated[list[str] | None, typer.Option(
        "--fresh", help="ENTITY=N: score the N newest records of that entity type (default for each: 2.5 days of "
        "its review capacity, e.g. 500 listings and 100 accounts)")] = None,
    top: Annotated[int, typer.Option(help="Queue rows to print")] = 15,
    api_key: Annotated[str | None, typer.Option(envvar="TRIAGE_API_KEY", help="API key (role scorer or admin)")] = None,
) -> None:
    """Score a fresh batch from the latest days through the HTTP API and print the top of the queue."""
    from cli.demo import print_queue, score_fresh_batch

    counts = {entity: int(2.5 * ENTITIES.scored(entity).review_capacity_per_day) for entity in ENTITIES.scored_names()}
    for item in fresh or []:
        entity, sep, n = item.partition("=")
        if not sep or not n.isdigit():
            raise UserError(f"--fresh must be ENTITY=N, got {item!r}")
        counts[check_entity(entity)] = int(n)
    queue = score_fresh_batch(data, url, counts, api_key=api_key)
    print_queue(queue, top)


@app.command()
@one_line_errors
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

    from jobs.simulation import log_simulation
    from jobs.simulation import simulate as run_simulation
    from models.registry import load_scorer
    from policy import CapacityConfig, QueuePolicyConfig
    from training.config import TrainConfig
    from training.pipeline import configure_mlflow

    settings = TriageSettings()
    client = MlflowClient(settings.tracking_uri)
    artifacts = {e: load_scorer(client, settings.model_name(e), alias=settings.serving_alias).artifact
                 for e in ENTITIES.scored_names()}
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
