"""The scorer artifact: everything needed to turn raw records into calibrated, explained scores.

Booster, calibration, feature encoder (with category vocabularies), reason texts, tier thresholds and
metadata travel together as one folder, so what was evaluated is exactly what is served.
"""

from __future__ import annotations

import ctypes
import json
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features import FeatureEncoder, FeatureSet, columns_from_frame, columns_from_records, feature_set_for
from features.exposure import exposure_of
from features.external import TabularAdapter
from features.graph import GraphSnapshot, enrich_with_graph
from features.schema import RawColumns, format_reason
from models.attribution import Attribution, LeafPathAttribution
from models.calibration import PlattCalibration
from models.tiers import TierThresholds
from triage.entities import ENTITIES

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


_C_API_PREDICT_RAW_SCORE = 1  # LightGBM c_api.h C_API_PREDICT_RAW_SCORE
_C_API_DTYPE_FLOAT64 = 1  # LightGBM c_api.h C_API_DTYPE_FLOAT64


class SingleRowPredictor:
    """Raw margins of one row through LightGBM's own single-row fast path (`c_api.h`:
    LGBM_BoosterPredictForMatSingleRowFastInit / ...SingleRowFast / LGBM_FastConfigFree).

    `Booster.predict` builds a predictor object, parses a parameter string and sets up a prediction for
    any shape on every call: ~80 µs for a single row, against ~20 µs here. The fast path runs the same tree
    traversal (the same `Predictor` as `Booster.predict`), so the margins are bit-identical
    (tests/test_artifact_fast_predict.py). LightGBM serialises calls on one booster with its own mutex;
    each call here has its own output buffers, so a predictor may be shared by threads.
    """

    def __init__(self, booster: lgb.Booster) -> None:
        self.booster = booster
        # the iterations `Booster.predict` uses when not told: the best iteration if one was recorded
        self.num_iteration = booster.best_iteration
        self.num_features = booster.num_feature()
        handle = ctypes.c_void_p()
        lgb.basic._safe_call(lgb.basic._LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle,
            ctypes.c_int(_C_API_PREDICT_RAW_SCORE),
            ctypes.c_int(0),  # start iteration
            ctypes.c_int(self.num_iteration),
            ctypes.c_int(_C_API_DTYPE_FLOAT64),
            ctypes.c_int32(self.num_features),
            ctypes.c_char_p(b""),  # no prediction parameters, as `Booster.predict` without keyword arguments
            ctypes.byref(handle),
        ))
        self._handle = handle
        # the handle points into the booster's C object: free it before the booster can go (this object
        # holds the booster, and the finaliser runs when this object is collected)
        self._free = weakref.finalize(self, lgb.basic._LIB.LGBM_FastConfigFree, handle)

    def is_for(self, booster: lgb.Booster) -> bool:
        """Whether this predictor still predicts as `booster.predict` does (same booster and iterations)."""
        return booster is self.booster and booster.best_iteration == self.num_iteration

    def accepts(self, matrix: np.ndarray) -> bool:
        return matrix.shape == (1, self.num_features) and matrix.dtype == np.float64 and matrix.flags.c_contiguous

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """The raw margin of the one row of a C-contiguous float64 (1, num_features) matrix, as a (1,) array."""
        out = np.empty(1, dtype=np.float64)
        out_len = ctypes.c_int64(0)
        # pointers wrapped in c_void_p: a bare int would be passed as a 32-bit C int
        lgb.basic._safe_call(lgb.basic._LIB.LGBM_BoosterPredictForMatSingleRowFast(
            self._handle,
            ctypes.c_void_p(matrix.ctypes.data),
            ctypes.byref(out_len),
            ctypes.c_void_p(out.ctypes.data),
        ))
        if out_len.value != 1:
            raise RuntimeError(f"LightGBM returned {out_len.value} values for one row, expected 1")
        return out


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
    _single_row: SingleRowPredictor | None = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        # the single-row predictor is a handle into this process's LightGBM; rebuilt on first use elsewhere
        return {**self.__dict__, "_single_row": None}

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
        if len(matrix) == 1:
            # one row (a single-record request) through LightGBM's fast path: the same margins, a quarter
            # of the cost; any other shape through `Booster.predict`
            single = self._single_row
            if single is None or not single.is_for(self.booster):
                single = self._single_row = SingleRowPredictor(self.booster)
            if single.accepts(matrix):
                return single.predict(matrix)
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
        exposure = exposure_of(self.feature_set, columns, self.encoder.typical)
        return ScoreBatch(
            ids=columns[self.feature_set.id_field],
            probability=probability,
            score=(probability * 100.0).round(1),  # np.round's own method, without its wrapper
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
    @cached_property
    def path_attribution(self) -> LeafPathAttribution:
        """The per-leaf credit table of path attribution, built from the booster on first use."""
        return LeafPathAttribution.from_booster(self.booster)

    def contributions(self, matrix: np.ndarray, num_threads: int = 0,
                      method: Attribution = Attribution.TREESHAP) -> np.ndarray:
        """Signed contributions in margin space, one column per feature (bias dropped): exact TreeSHAP, or
        path attribution (models/attribution.py)."""
        if method is Attribution.PATH:
            return self.path_attribution.contributions(self.booster, matrix, num_threads=num_threads)
        contrib = np.asarray(self.booster.predict(matrix, pred_contrib=True, num_threads=num_threads))
        return contrib[:, :-1]

    def reasons(self, matrix: np.ndarray, top_k: int | None = 3, num_threads: int = 0,
                method: Attribution = Attribution.TREESHAP) -> list[list[Reason]]:
        """Reasons for each model row: the features raising the score most (all features, by |effect|,
        when `top_k` is None). TreeSHAP costs milliseconds a row, so callers pass only the rows they show."""
        if len(matrix) == 0:
            return []
        contrib = self.contributions(matrix, num_threads=num_threads, method=method)
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
            "metadata": self._metadata_to_save(),
        }
        (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str))
        if self.graph is not None:
            self.graph.save(directory / GRAPH_DIR)
        return directory

    def _metadata_to_save(self) -> dict[str, Any]:
        # an adapter's feature set is data, not code: its declaration travels with the model (docs/adapters.md)
        declaration = self.feature_set.declaration
        return self.metadata if declaration is None else {**self.metadata, "adapter": dict(declaration)}

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
        feature_set = _feature_set_of(manifest)
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


def _feature_set_of(manifest: Mapping[str, Any]) -> FeatureSet:
    """The feature set a saved artifact was trained on: rebuilt from the adapter declaration in its metadata
    (and the adapter's entity type registered, so stores, policy and serving accept it), else the registry's."""
    declaration = (manifest.get("metadata") or {}).get("adapter")
    if declaration is None:
        return feature_set_for(manifest["entity"])
    adapter = TabularAdapter.from_dict(declaration)
    if adapter.name != manifest["entity"]:
        raise ValueError(f"scorer artifact is corrupt: entity {manifest['entity']!r} but adapter {adapter.name!r}")
    if adapter.name not in ENTITIES:
        adapter.register()
    feature_set = feature_set_for(adapter.name)
    if feature_set.feature_names != adapter.feature_set().feature_names:
        raise ValueError(f"entity {adapter.name!r} is registered with features {feature_set.feature_names}, but the "
                         f"artifact was trained on {adapter.feature_set().feature_names}")
    return feature_set
