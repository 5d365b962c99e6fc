"""Load a marketplace data set (the generator's, or a user's through the same contract) into labelled
raw frames per entity. Labels and ground truth stay beside the raw fields, never inside them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features import Entity, FeatureSet, columns_from_frame, feature_set_for
from features.account import ACCOUNT_GRAPH_CONFIG
from features.graph import GraphSnapshot, LinkGraph, enrich_with_graph, snapshot_from_entities

TRUTH_COLUMNS = ("true_prob", "is_violation", "risk_type", "loss_if_missed", "exposure_if_violation")


@dataclass(frozen=True)
class LabelledEntities:
    """Raw records of one entity type with their observed labels (and ground truth when known)."""

    feature_set: FeatureSet
    frame: pd.DataFrame
    label: np.ndarray
    label_available_at: pd.Series
    truth: pd.DataFrame | None
    graph: GraphSnapshot | None = None
    """Accounts: the link graph over all accounts of the data set, with every label and when it became
    known; enrichment only ever uses what was known at each row's time."""

    @property
    def times(self) -> pd.Series:
        return pd.to_datetime(self.frame[self.feature_set.time_field], utc=True)

    def subset(self, mask: np.ndarray) -> LabelledEntities:
        return LabelledEntities(
            feature_set=self.feature_set,
            frame=self.frame.loc[mask].reset_index(drop=True),
            label=self.label[mask],
            label_available_at=self.label_available_at.loc[mask].reset_index(drop=True),
            truth=None if self.truth is None else self.truth.loc[mask].reset_index(drop=True),
            graph=self.graph,
        )

    def columns(self) -> dict[str, np.ndarray]:
        """Raw columns, with the link-graph columns when the entity has a graph (point in time per row)."""
        columns = columns_from_frame(self.frame, self.feature_set)
        if self.graph is not None:
            columns.update(enrich_with_graph(columns, self.graph))
        return columns

    def __len__(self) -> int:
        return len(self.frame)


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"data set file {path} is missing (run `triage generate` or see docs/adapters.md)")
    return pd.read_parquet(path)


def listing_frame(listings: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
    """Listings with the seller context a caller sends along (static account facts only: no history that
    could postdate the listing)."""
    seller = accounts.drop_duplicates("account_id", keep="first")[
        ["account_id", "created_at", "country", "verification"]
    ].rename(
        columns={
            "account_id": "seller_id",
            "created_at": "seller_created_at",
            "country": "seller_country",
            "verification": "seller_verification",
        }
    )
    return listings.merge(seller, on="seller_id", how="left", validate="many_to_one")


def load_entities(dataset_dir: Path, entity: str | Entity) -> LabelledEntities:
    feature_set = feature_set_for(entity)
    accounts = _read(dataset_dir / "accounts.parquet")
    if feature_set.entity is Entity.LISTING:
        frame = listing_frame(_read(dataset_dir / "listings.parquet"), accounts)
        truth = _read(dataset_dir / "listing_truth.parquet")
    else:
        frame = accounts
        truth = _read(dataset_dir / "account_truth.parquet")
    id_field = feature_set.id_field
    truth = frame[[id_field]].merge(truth, on=id_field, how="left", validate="one_to_one")
    if truth["label"].isna().any():
        raise ValueError(f"{feature_set.entity} truth lacks labels for some ids")
    order = np.argsort(pd.to_datetime(frame[feature_set.time_field], utc=True).to_numpy(), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    truth = truth.iloc[order].reset_index(drop=True)
    known_truth = [c for c in TRUTH_COLUMNS if c in truth.columns]
    label = truth["label"].to_numpy(dtype=np.int8)
    label_available_at = pd.to_datetime(truth["label_available_at"], utc=True)
    graph = None
    identifiers_path = dataset_dir / "account_identifiers.parquet"
    if feature_set.entity is Entity.ACCOUNT and identifiers_path.is_file():
        links = LinkGraph.from_identifiers(pd.read_parquet(identifiers_path), frame["account_id"].astype(str))
        graph = snapshot_from_entities(links, columns_from_frame(frame, feature_set), feature_set, label,
                                       label_available_at, config=ACCOUNT_GRAPH_CONFIG)
    return LabelledEntities(
        feature_set=feature_set,
        frame=frame,
        label=label,
        label_available_at=label_available_at,
        truth=truth[known_truth] if known_truth else None,
        graph=graph,
    )
