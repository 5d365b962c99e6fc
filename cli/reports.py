"""Reports for risk-ops leads: `triage monitor` (drift, precision by tier, SLA) and `triage rca` (root causes)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from cli.common import EntityOption, check_entity, one_line_errors
from triage.settings import TriageSettings

app = typer.Typer()


def run_monitor_command(
    settings: TriageSettings, entity: str, alias: str, data: Path | None, days: int, out: Path, progress: bool
) -> int:
    from mlflow import MlflowClient

    from models.registry import load_scorer
    from reports.monitor import (
        SCORE_GAUGE_KEY,
        drift_gauges,
        monitor_from_dataset,
        monitor_from_stores,
        write_monitor_report,
    )
    from stores.engine import make_engine
    from stores.records import TimeWindow

    artifact = load_scorer(MlflowClient(settings.tracking_uri), settings.model_name(entity), alias=alias).artifact
    if data is not None:
        report = monitor_from_dataset(data, artifact, progress=progress)
    else:
        now = datetime.now(UTC)
        window = TimeWindow(now - timedelta(days=days), now)
        report = monitor_from_stores(make_engine(settings.database_url), artifact, current_window=window,
                                     progress=progress)
    written = write_monitor_report(report, out, tracking_uri=settings.tracking_uri)
    gauges = settings.gauges_file(entity)
    gauges.parent.mkdir(parents=True, exist_ok=True)
    psi = drift_gauges(report)
    score_psi = psi.pop(SCORE_GAUGE_KEY, None)
    gauges.write_text(json.dumps({"entity": entity, "at": datetime.now(UTC).isoformat(), "feature_psi": psi,
                                  "score_psi": score_psi}, indent=2))
    typer.echo(report.drift_table().head(15).to_string(float_format=lambda v: f"{v:.3f}"))
    for alert in report.alerts:
        typer.echo(f"{alert.level.upper():5} {alert.kind}: {alert.message}")
    typer.echo(f"report: {written.html}   MLflow run: {written.mlflow_run_id}   gauges: {gauges}")
    return sum(a.level == "alert" for a in report.alerts)


def run_rca_command(
    settings: TriageSettings, entity: str, alias: str, data: Path | None, days: int, out: Path, progress: bool
) -> None:
    from mlflow import MlflowClient

    from models.registry import load_scorer
    from reports.rca import rca_from_dataset, rca_from_stores, write_rca_report
    from stores.engine import make_engine
    from stores.records import TimeWindow

    artifact = load_scorer(MlflowClient(settings.tracking_uri), settings.model_name(entity), alias=alias).artifact
    if data is not None:
        report = rca_from_dataset(data, artifact, progress=progress)
    else:
        now = datetime.now(UTC)
        report = rca_from_stores(make_engine(settings.database_url), artifact,
                                 TimeWindow(now - timedelta(days=days), now), progress=progress)
    written = write_rca_report(report, out, tracking_uri=settings.tracking_uri)
    typer.echo(f"{report.violations} confirmed violations of {report.cases} cases (base rate {report.base_rate:.2%})")
    typer.echo(report.top_segments(8).to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo("candidate rules (backtested on the later part of the window):")
    for rule in report.rules[:5]:
        b = rule.backtest
        typer.echo(f"  IF {rule.text}: precision {b.precision:.0%}, recall {b.recall:.0%}, "
                   f"coverage {b.coverage:.1%}, loss caught {b.loss_share:.0%}")
    typer.echo(f"report: {written.html}  summary: {written.markdown}  MLflow run: {written.mlflow_run_id}")


@app.command()
@one_line_errors
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
    alerts = run_monitor_command(TriageSettings(), check_entity(entity), alias, data, days, out, sys.stderr.isatty())
    if alerts and fail_on_alert:
        raise typer.Exit(1)


@app.command()
@one_line_errors
def rca(
    entity: EntityOption = "listing",
    data: Annotated[Path | None, typer.Option(help="Data set (its later window); default: the stores")] = None,
    days: Annotated[int, typer.Option(min=1, help="Without --data: the last N days of decisions")] = 30,
    alias: Annotated[str, typer.Option(help="Registry alias whose contributions explain the cases")] = "champion",
    out: Annotated[Path, typer.Option(help="Folder for rca.html, rca.md and plots")] = Path("var/reports/rca"),
) -> None:
    """Root causes of confirmed violations: segments by lift and loss, the model's drivers over time, and
    candidate rules with their backtested precision, recall, coverage and loss caught."""
    run_rca_command(TriageSettings(), check_entity(entity), alias, data, days, out, sys.stderr.isatty())
