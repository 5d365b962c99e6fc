"""The demo's last step: score the newest records of a data set through the HTTP API and print the queue."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from features import ACCOUNT_FEATURE_SET, LISTING_FEATURE_SET
from serving.client import ScoringClient, records_for_api
from training.datasets import listing_frame

QUEUE_TIERS = ("P0", "P1", "P2")


def score_fresh_batch(
    data_dir: Path, url: str, n_listings: int, n_accounts: int, api_key: str | None = None
) -> pd.DataFrame:
    accounts = pd.read_parquet(data_dir / "accounts.parquet")
    listings = listing_frame(pd.read_parquet(data_dir / "listings.parquet"), accounts)
    newest_listings = listings.sort_values("created_at").tail(n_listings)
    newest_accounts = accounts.sort_values("observed_at").tail(n_accounts)
    rows = []
    with ScoringClient(url, api_key=api_key) as client:
        for entity, frame, fs in (
            ("listing", newest_listings, LISTING_FEATURE_SET),
            ("account", newest_accounts, ACCOUNT_FEATURE_SET),
        ):
            rows.extend(client.score(entity, records_for_api(frame, fs)))
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
