"""Load a marketplace data set (the generator's, or a user's through the same contract) into labelled
raw frames per entity. Labels and ground truth stay beside the raw fields, never inside them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features import FeatureSet, columns_from_frame, feature_set_for
from features.context import context_columns, join_context
from features.graph import GraphSnapshot, LinkGraph, enrich_with_graph, graph_config_of, snapshot_from_entities
from triage.entities import ENTITIES

TRUTH_COLUMNS = ("true_prob", "is_violation", "risk_type", "loss_if_missed", "exposure_if_violation", "harm_class",
                 "harm", "harm_if_violation")


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


def _read(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"data set file {path} is missing (run `triage generate` or see docs/adapters.md)")
    return pd.read_parquet(path, columns=columns)


def entity_file(dataset_dir: Path, entity: str, which: str = "data") -> Path:
    """The data set file of an entity type (`data`, `truth` or `identifiers`), as the registry names it."""
    spec = ENTITIES.scored(entity)
    name = {"data": spec.data_file, "truth": spec.truth_file, "identifiers": spec.identifiers_file}[which]
    if name is None:
        raise FileNotFoundError(f"entity {entity!r} declares no {which} file (see triage/entities.py)")
    return dataset_dir / name


def raw_frame(dataset_dir: Path, entity: str) -> pd.DataFrame:
    """An entity type's raw records with the context of the entities they link to (the seller of a listing)."""
    frame = _read(entity_file(dataset_dir, entity))
    linked = {other: _read(entity_file(dataset_dir, other), columns)
              for other, columns in context_columns(entity).items()}
    return join_context(frame, entity, linked)


def load_entities(dataset_dir: Path, entity: str) -> LabelledEntities:
    feature_set = feature_set_for(entity)
    frame = raw_frame(dataset_dir, entity)
    truth = _read(entity_file(dataset_dir, entity, "truth"))
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
    graph_config = graph_config_of(feature_set)
    identifiers = ENTITIES.get(entity).identifiers_file
    if graph_config is not None and identifiers is not None and (dataset_dir / identifiers).is_file():
        links = LinkGraph.from_identifiers(pd.read_parquet(dataset_dir / identifiers), frame[id_field].astype(str))
        graph = snapshot_from_entities(links, columns_from_frame(frame, feature_set), feature_set, label,
                                       label_available_at, config=graph_config)
    return LabelledEntities(
        feature_set=feature_set,
        frame=frame,
        label=label,
        label_available_at=label_available_at,
        truth=truth[known_truth] if known_truth else None,
        graph=graph,
    )
