"""Training and serving share one feature path: the frame path (training, batch) and the JSON-record path
(serving) must give identical vectors and identical scores for the same entities."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow import MlflowClient

from features import columns_from_frame, columns_from_records
from models.registry import load_scorer
from serving.client import records_for_api
from serving.schemas import RECORD_MODELS
from tests.conftest import TrainedStore
from training.datasets import load_entities

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("entity", ["listing", "account"])
def test_frame_and_json_record_paths_are_identical(trained_store: TrainedStore, entity: str) -> None:
    loaded = load_scorer(MlflowClient(trained_store.settings.tracking_uri), trained_store.settings.model_name(entity))
    artifact = loaded.artifact
    frame = load_entities(trained_store.dataset, entity).frame.sample(2000, random_state=5).reset_index(drop=True)
    # the record path exactly as a request travels: JSON text, pydantic validation, model_dump
    record_model = RECORD_MODELS[entity]
    wire = json.loads(json.dumps(records_for_api(frame, artifact.feature_set)))
    records = [record_model.model_validate(r).model_dump() for r in wire]

    from_frame = artifact.score_columns(columns_from_frame(frame, artifact.feature_set))
    from_records = artifact.score_columns(columns_from_records(records, artifact.feature_set))
    np.testing.assert_array_equal(from_frame.matrix, from_records.matrix)
    np.testing.assert_array_equal(from_frame.probability, from_records.probability)
    np.testing.assert_array_equal(from_frame.expected_loss, from_records.expected_loss)
    assert from_frame.tier.tolist() == from_records.tier.tolist()
