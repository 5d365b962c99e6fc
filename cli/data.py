"""Data commands: `triage generate` (the synthetic marketplace) and `triage score-batch` (offline scoring)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.common import EntityOption, UserError, check_entity, one_line_errors
from triage.settings import TriageSettings

app = typer.Typer()


@app.command()
@one_line_errors
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


@app.command("score-batch")
@one_line_errors
def score_batch(
    input: Annotated[Path, typer.Option("--input", "-i", help="Parquet file or folder of raw records")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet folder to write the scores to")],
    entity: EntityOption = "listing",
    linked: Annotated[list[str] | None, typer.Option(
        "--linked", help="ENTITY=PATH: the table of an entity type the records link to, whose context is joined "
        "in as in training (e.g. --linked account=accounts.parquet adds a listing's seller context)")] = None,
    accounts: Annotated[Path | None, typer.Option(help="Shorthand for --linked account=PATH")] = None,
    dask: Annotated[str | None, typer.Option("--dask", help="Dask scheduler address (default: local threads)")] = None,
    blocksize: Annotated[str, typer.Option(help="Target partition size")] = "64MiB",
    partitions: Annotated[int | None, typer.Option(min=1, help="At least this many partitions")] = None,
    alias: Annotated[str, typer.Option(help="Registry alias to score with")] = "champion",
) -> None:
    """Score a Parquet data set offline through dask.dataframe with a registered scorer."""
    from mlflow import MlflowClient

    from jobs.batch import score_parquet
    from models.registry import load_scorer

    tables = dict(_linked_table(item) for item in linked or [])
    if accounts is not None:
        tables["account"] = accounts
    settings = TriageSettings()
    scorer = load_scorer(MlflowClient(settings.tracking_uri), settings.model_name(check_entity(entity)), alias=alias)
    result = score_parquet(scorer.artifact, input, output, client=dask, blocksize=blocksize, linked=tables or None,
                           progress=sys.stderr.isatty(), min_partitions=partitions)
    typer.echo(f"scored {result.rows:,} rows into {output} ({result.partitions} partitions) with {scorer.uri}")


def _linked_table(item: str) -> tuple[str, Path]:
    entity, sep, path = item.partition("=")
    if not sep or not path:
        raise UserError(f"--linked must be ENTITY=PATH, got {item!r}")
    check_entity(entity)
    return entity, Path(path)
