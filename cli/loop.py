"""The closed loop's commands: retrain from decisions, compare the champion with the shadow challenger."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from cli.common import EntityOption, check_entity, one_line_errors
from triage.settings import TriageSettings

app = typer.Typer()


@app.command()
@one_line_errors
def retrain(
    entity: EntityOption,
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Base data set to train on as well")] = None,
    window_days: Annotated[int, typer.Option(min=1, help="Recent days of decisions held out to compare on")] = 14,
    config: Annotated[Path | None, typer.Option(help="Training config JSON (metric, margin, LightGBM)")] = None,
) -> None:
    """Retrain from logged feature vectors joined to reviewer decisions (point in time) plus the base data;
    compare with the champion on the same recent window; promote only if the challenger wins by the
    configured metric and margin, else register it as `challenger` (shadow)."""
    from loop.retrain import retrain as run_retrain
    from training.config import TrainConfig

    cfg = TrainConfig.from_file(config) if config else TrainConfig()
    report = run_retrain(TriageSettings(), check_entity(entity), data, cfg, window_days,
                         progress=sys.stderr.isatty())
    typer.echo(report.to_markdown())


@app.command()
@one_line_errors
def compare(
    entity: EntityOption,
    since: Annotated[datetime, typer.Option(help="Window start, ISO 8601 (UTC if no zone)")],
    until: Annotated[datetime | None, typer.Option(help="Window end (default: now)")] = None,
) -> None:
    """Champion against the shadow challenger on decided traffic scored in the window."""
    from loop.shadow import compare_shadow
    from stores.records import TimeWindow, utc_now

    def aware(t: datetime) -> datetime:
        return t if t.tzinfo else t.replace(tzinfo=UTC)

    window = TimeWindow(aware(since), aware(until) if until else utc_now())
    typer.echo(compare_shadow(TriageSettings(), check_entity(entity), window).to_markdown())
