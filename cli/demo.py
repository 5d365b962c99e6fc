"""The demo's last step: score the newest records of a data set through the HTTP API and print the queue."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import typer

from features import feature_set_for
from serving.client import ScoringClient, records_for_api
from training.datasets import raw_frame

QUEUE_TIERS = ("P0", "P1", "P2")


def score_fresh_batch(data_dir: Path, url: str, counts: Mapping[str, int], api_key: str | None = None) -> pd.DataFrame:
    """Send the newest `counts[entity]` records of each entity type of the data set through the scoring API."""
    rows = []
    with ScoringClient(url, api_key=api_key) as client:
        for entity, n in counts.items():
            fs = feature_set_for(entity)
            newest = raw_frame(data_dir, entity).sort_values(fs.time_field).tail(n)
            rows.extend(client.score(entity, records_for_api(newest, fs)))
    return pd.DataFrame(rows)


def print_queue(results: pd.DataFrame, top: int) -> None:
    queued = results[results["tier"].isin(QUEUE_TIERS)].sort_values("expected_loss", ascending=False)
    per_tier = ", ".join(f"{tier}: {(queued['tier'] == tier).sum()}" for tier in QUEUE_TIERS)
    typer.echo(f"scored {len(results):,} entities; {len(queued):,} enter the queue ({per_tier})")
    typer.echo(f"\n{'entity':<12} {'type':<8} {'tier':<4} {'score':>6} {'exp. loss':>10}  top reasons")
    for row in queued.head(top).to_dict(orient="records"):
        reasons = "; ".join(r["text"] for r in (row["reasons"] or [])[:2])
        typer.echo(
            f"{row['entity_id']:<12} {row['entity_type']:<8} {row['tier']:<4} {row['score']:>6.1f} "
            f"{row['expected_loss']:>10,.0f}  {reasons}"
        )
