from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import FeatureEncoder, FeatureKind, FieldKind, columns_from_frame, columns_from_records
from features.external import CONSTANT_TIME, TabularAdapter, feature_set_from_declaration
from models.artifact import ScorerArtifact
from models.artifact import _feature_set_of as artifact_feature_set
from training.config import LightGBMConfig, TrainConfig
from training.datasets import LabelledEntities
from training.evaluation import evaluate_window
from training.split import TimeSplit
from training.trainer import fit_scorer
from triage.entities import ENTITIES


def adapter(**overrides: object) -> TabularAdapter:
    settings: dict[str, object] = {
        "name": "merchant", "id_field": "merchant_id", "label_field": "fraud", "numeric": ("volume", "age"),
        "categorical": ("segment",), "reasons": {"volume": "Volume {value:.0f}"},
    }
    settings.update(overrides)
    return TabularAdapter(**settings)  # type: ignore[arg-type]


def table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    volume = rng.lognormal(3, 1, n)
    segment = rng.choice(["retail", "travel", "gaming"], n)
    fraud = (rng.random(n) < 1 / (1 + np.exp(-(-3 + 0.6 * np.log(volume) + (segment == "gaming"))))).astype(int)
    return pd.DataFrame({"merchant_id": [f"M{i}" for i in range(n)], "volume": volume,
                         "age": rng.uniform(0, 900, n), "segment": segment, "fraud": fraud})


def test_feature_set_declares_identity_features_and_reasons() -> None:
    fs = adapter().feature_set()
    assert str(fs.entity) == "merchant" and fs.id_field == "merchant_id" and fs.time_field == "observed_at"
    assert fs.feature_names == ["volume", "age", "segment"]
    assert fs.by_name["segment"].kind is FeatureKind.CATEGORICAL
    assert fs.input("observed_at").kind is FieldKind.TIME and not fs.input("observed_at").required
    assert "fraud" not in {f.name for f in fs.inputs}  # the label is never an input
    assert fs.by_name["volume"].reason_text(1234.4) == "Volume 1234"
    assert fs.by_name["age"].reason_text(12.5) == "age = 12.5"
    assert fs.by_name["segment"].reason_text("gaming") == "segment = gaming"


def test_exposure_constant_or_named_column() -> None:
    frame = table(5)
    constant = adapter().feature_set()
    assert constant.exposure(columns_from_frame(frame, constant)).tolist() == [1.0] * 5
    named = adapter(exposure_field="volume").feature_set()
    assert np.allclose(named.exposure(columns_from_frame(frame, named)), frame["volume"])
    frame.loc[0, "volume"] = np.nan
    assert named.exposure(columns_from_frame(frame, named))[0] == 0.0


def test_adapter_feature_set_drives_the_encoder_for_frames_and_records() -> None:
    declared = adapter()
    fs = declared.feature_set()
    frame, _, _ = declared.prepare(table())
    encoder = FeatureEncoder(fs).fit(columns_from_frame(frame, fs))
    matrix = encoder.transform_frame(frame)
    assert matrix.shape == (len(frame), 3)
    first = frame.iloc[0]
    records = [{"merchant_id": "M0", "volume": float(first["volume"]), "age": float(first["age"]),
                "segment": first["segment"], "observed_at": datetime(1970, 1, 1, tzinfo=UTC)}]
    np.testing.assert_array_equal(encoder.transform_records(records)[0], matrix[0])
    unseen = encoder.transform(columns_from_records([{"merchant_id": "X", "segment": "crypto"}], fs))
    assert np.isnan(unseen).all()  # absent numbers are missing, an unseen category too
    restored = FeatureEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())), fs)
    np.testing.assert_array_equal(restored.transform_frame(frame), matrix)


def test_prepare_splits_label_and_fills_time() -> None:
    frame, label, available = adapter().prepare(table(10))
    assert "fraud" not in frame.columns and label.dtype == np.int8 and len(label) == 10
    assert (frame["observed_at"] == CONSTANT_TIME).all() and (available == CONSTANT_TIME).all()
    timed = table(3).assign(seen=pd.Timestamp("2026-01-05", tz="UTC"), known=pd.Timestamp("2026-02-01", tz="UTC"))
    frame, _, available = adapter(time_field="seen", label_time_field="known").prepare(timed)
    assert "observed_at" not in frame.columns and (available == pd.Timestamp("2026-02-01", tz="UTC")).all()
    with pytest.raises(ValueError, match="0/1"):
        adapter().prepare(table(3).assign(fraud=[0, 2, 1]))


def test_declaration_round_trips_through_json() -> None:
    declared = adapter(exposure_field="volume", time_field="seen", descriptions={"age": "Days since onboarding"})
    data = json.loads(json.dumps(declared.to_dict()))
    assert TabularAdapter.from_dict(data) == declared
    rebuilt = feature_set_from_declaration(data)
    assert rebuilt.feature_names == declared.feature_set().feature_names
    assert rebuilt.by_name["age"].description == "Days since onboarding"
    wider = declared.with_numeric(["group_size"])
    assert wider.feature_set().feature_names == ["volume", "age", "group_size", "segment"]


@pytest.mark.parametrize("bad", [
    {"name": "account"},
    {"numeric": ("volume", "fraud")},
    {"categorical": ("volume",)},
    {"required": ("nope",)},
])
def test_invalid_declarations_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        adapter(**bad)


def test_product_training_and_evaluation_run_unchanged_on_an_adapter(tmp_path: Path) -> None:
    declared = adapter(exposure_field="volume")
    with ENTITIES.temporarily(declared.entity_spec(review_capacity_per_day=20)):
        _train_evaluate_save_and_load(declared, tmp_path)
    assert "merchant" not in ENTITIES


def _train_evaluate_save_and_load(declared: TabularAdapter, tmp_path: Path) -> None:
    frame, label, available = declared.prepare(table(1500))
    data = LabelledEntities(declared.feature_set(), frame, label, available, truth=None)
    rng = np.random.default_rng(1)
    part = rng.choice(3, len(frame), p=[0.6, 0.2, 0.2])
    split = TimeSplit(CONSTANT_TIME, CONSTANT_TIME, CONSTANT_TIME, CONSTANT_TIME, CONSTANT_TIME,
                      train=part == 0, valid=part == 1, test=np.zeros(len(frame), dtype=bool))
    config = TrainConfig(lightgbm=LightGBMConfig(max_rounds=100, num_leaves=7))
    assert config.capacity("merchant") == 20  # the registered entity type's capacity
    artifact, _ = fit_scorer(data, split, config)
    assert isinstance(artifact, ScorerArtifact) and artifact.entity == "merchant"
    evaluation = evaluate_window(artifact, data.subset(part == 2), k=20)
    assert 0.5 < evaluation.model["roc_auc"] <= 1.0
    batch = artifact.score_columns(columns_from_frame(data.subset(part == 2).frame, declared.feature_set()))
    assert np.allclose(batch.exposure, data.subset(part == 2).frame["volume"])
    assert artifact.reason_texts["volume"] == "Volume {value:.0f}"  # the adapter's texts travel with the model
    # the saved artifact carries the adapter's declaration and loads back without the code that declared it
    saved = artifact.save(tmp_path / "merchant-scorer")
    assert json.loads((saved / "scorer.json").read_text())["metadata"]["adapter"] == declared.to_dict()
    test = data.subset(part == 2)
    expected = artifact.score_frame(test.frame)
    unregistered_load(saved, expected, test.frame)


def unregistered_load(saved: Path, expected: pd.DataFrame, frame: pd.DataFrame) -> None:
    """Load in a registry that does not know the adapter's entity type: the loader registers it from the
    declaration in the artifact's metadata, and the model scores exactly as before."""
    registered = ENTITIES.get("merchant")
    ENTITIES._specs.pop("merchant")  # as in a new process that never declared the adapter
    try:
        assert "merchant" not in ENTITIES
        loaded = ScorerArtifact.load(saved)
        assert "merchant" in ENTITIES and loaded.entity == "merchant"
        pd.testing.assert_frame_equal(loaded.score_frame(frame), expected)
    finally:
        ENTITIES._specs["merchant"] = registered


def test_an_artifact_without_an_adapter_declaration_needs_a_registered_entity(tmp_path: Path) -> None:
    manifest = {"entity": "merchant", "metadata": {}}
    with pytest.raises(ValueError, match="unknown entity 'merchant'"):
        artifact_feature_set(manifest)
