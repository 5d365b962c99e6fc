"""The scorer artifact: everything needed to turn raw records into calibrated, explained scores.

Booster, calibration, feature encoder (with category vocabularies), reason texts, tier thresholds and
metadata travel together as one folder, so what was evaluated is exactly what is served.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features import FeatureEncoder, FeatureSet, columns_from_frame, columns_from_records, feature_set_for
from features.graph import GraphSnapshot, enrich_with_graph
from features.schema import RawColumns, format_reason
from models.calibration import PlattCalibration
from models.tiers import TierThresholds

FORMAT_VERSION = 1
BOOSTER_FILE = "booster.txt"
MANIFEST_FILE = "scorer.json"
GRAPH_DIR = "graph"


@dataclass(frozen=True)
class Reason:
    feature: str
    value: Any
    contribution: float
    text: str


@dataclass(frozen=True)
class ScoreBatch:
    """Scores for a batch of records, as arrays aligned with the input order."""

    ids: np.ndarray
    probability: np.ndarray
    score: np.ndarray
    tier: np.ndarray
    exposure: np.ndarray
    expected_loss: np.ndarray
    matrix: np.ndarray


@dataclass
class ScorerArtifact:
    booster: lgb.Booster
    encoder: FeatureEncoder
    calibration: PlattCalibration
    tiers: TierThresholds
    reason_texts: dict[str, str]
    metadata: dict[str, Any]
    graph: GraphSnapshot | None = None
    """The account link graph as of training (labels known by the cutoff): group and neighbour features are
    computed from it at scoring time, the same way for training, evaluation, batch and serving."""

    @property
    def feature_set(self) -> FeatureSet:
        return self.encoder.feature_set

    @property
    def entity(self) -> str:
        return str(self.feature_set.entity)

    @cached_property
    def schema_hash(self) -> str:
        return self.encoder.schema_hash()

    # -- prediction -------------------------------------------------------------------------------
    def predict_margin(self, matrix: np.ndarray, num_threads: int = 0) -> np.ndarray:
        return np.asarray(self.booster.predict(matrix, raw_score=True, num_threads=num_threads), dtype=np.float64)

    def predict_proba(self, matrix: np.ndarray, num_threads: int = 0) -> np.ndarray:
        return self.calibration.transform(self.predict_margin(matrix, num_threads=num_threads))

    def enrich(self, columns: RawColumns) -> RawColumns:
        """Raw columns plus the link-graph columns (which callers cannot send: the service computes them)."""
        if self.graph is None:
            return columns
        return {**columns, **enrich_with_graph(columns, self.graph)}

    def model_matrix(self, columns: RawColumns) -> np.ndarray:
        return self.encoder.transform(self.enrich(columns))

    def score_columns(self, columns: RawColumns, num_threads: int = 0) -> ScoreBatch:
        matrix = self.model_matrix(columns)
        probability = self.predict_proba(matrix, num_threads=num_threads)
        exposure = self.feature_set.exposure(columns)
        return ScoreBatch(
            ids=columns[self.feature_set.id_field],
            probability=probability,
            score=np.round(probability * 100.0, 1),
            tier=self.tiers.assign(probability),
            exposure=exposure,
            expected_loss=probability * exposure,
            matrix=matrix,
        )

    def score_records(self, records: Sequence[Mapping[str, Any]], num_threads: int = 0) -> ScoreBatch:
        return self.score_columns(columns_from_records(records, self.feature_set), num_threads=num_threads)

    def score_frame(self, frame: pd.DataFrame, num_threads: int = 0) -> pd.DataFrame:
        batch = self.score_columns(columns_from_frame(frame, self.feature_set), num_threads=num_threads)
        return pd.DataFrame(
            {
                self.feature_set.id_field: batch.ids,
                "probability": batch.probability,
                "score": batch.score,
                "tier": batch.tier,
                "exposure": batch.exposure,
                "expected_loss": batch.expected_loss,
            }
        )

    # -- reasons ----------------------------------------------------------------------------------
    def contributions(self, matrix: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """Signed TreeSHAP contributions in margin space, one column per feature (bias dropped)."""
        contrib = np.asarray(self.booster.predict(matrix, pred_contrib=True, num_threads=num_threads))
        return contrib[:, :-1]

    def reasons(self, matrix: np.ndarray, top_k: int | None = 3, num_threads: int = 0) -> list[list[Reason]]:
        """Reasons for each model row: the features raising the score most (all features, by |effect|,
        when `top_k` is None). Costly (TreeSHAP), so callers pass only the rows they will show."""
        if len(matrix) == 0:
            return []
        contrib = self.contributions(matrix, num_threads=num_threads)
        values = self.encoder.decode(matrix)
        names = self.encoder.feature_names
        out: list[list[Reason]] = []
        for r in range(len(matrix)):
            row = contrib[r]
            if top_k is None:
                order = list(np.argsort(-np.abs(row), kind="stable"))
            else:
                order = [j for j in np.argsort(-row, kind="stable")[:top_k] if row[j] > 0]
            out.append([self._reason(names[j], values[names[j]][r], float(row[j])) for j in order])
        return out

    def _reason(self, name: str, value: Any, contribution: float) -> Reason:
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            value = None
        spec = self.feature_set.by_name[name]
        text = format_reason(self.reason_texts.get(name, spec.reason), value, spec.description)
        return Reason(feature=name, value=value, contribution=contribution, text=text)

    # -- persistence ------------------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / BOOSTER_FILE))
        manifest = {
            "format_version": FORMAT_VERSION,
            "entity": self.entity,
            "encoder": self.encoder.to_dict(),
            "calibration": self.calibration.to_dict(),
            "tiers": self.tiers.to_dict(),
            "reason_texts": self.reason_texts,
            "metadata": self.metadata,
        }
        (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str))
        if self.graph is not None:
            self.graph.save(directory / GRAPH_DIR)
        return directory

    @classmethod
    def load(cls, directory: Path) -> ScorerArtifact:
        manifest_path = directory / MANIFEST_FILE
        booster_path = directory / BOOSTER_FILE
        for path in (manifest_path, booster_path):
            if not path.is_file():
                raise FileNotFoundError(f"scorer artifact is incomplete: {path} is missing")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"scorer artifact is corrupt: {manifest_path} is not valid JSON ({exc})") from exc
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"scorer artifact format {manifest.get('format_version')!r} is not supported "
                f"(expected {FORMAT_VERSION})"
            )
        feature_set = feature_set_for(manifest["entity"])
        try:
            booster = lgb.Booster(model_file=str(booster_path))
        except lgb.basic.LightGBMError as exc:
            raise ValueError(f"scorer artifact is corrupt: cannot read {booster_path} ({exc})") from exc
        return cls(
            booster=booster,
            encoder=FeatureEncoder.from_dict(manifest["encoder"], feature_set),
            calibration=PlattCalibration(**manifest["calibration"]),
            tiers=TierThresholds(**manifest["tiers"]),
            reason_texts=dict(manifest["reason_texts"]),
            metadata=dict(manifest["metadata"]),
            graph=GraphSnapshot.load(directory / GRAPH_DIR).warm() if (directory / GRAPH_DIR).is_dir() else None,
        )

