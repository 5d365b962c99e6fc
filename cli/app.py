"""`triage`: the command line for data, training, evaluation, promotion, the closed loop, the queue, reports
and operations. A thin layer: every command parses its options, builds the settings once, and calls plain
functions of the packages below it."""

from __future__ import annotations

import os

import typer

from cli import admin, data, events, loop, models, queue, reports

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_show_locals=False)
for commands in (data.app, models.app, loop.app, queue.app, reports.app, events.app, admin.app):
    app.add_typer(commands)


@app.callback()
def _quiet_mlflow() -> None:
    # a progress bar per model download is noise in a CLI that prints its own results
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


if __name__ == "__main__":
    app()
