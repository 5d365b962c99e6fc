"""The scorer artifact through a real (temporary) MLflow store: tracked runs, registry, aliases, round trip."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from features import columns_from_frame
from features.listing import LISTING_FEATURE_SET
from models.artifact import ScorerArtifact
from models.registry import CHAMPION, ModelNotFoundError, alias_version, load_scorer
from tests.conftest import TrainedStore, small_train_config
from training.config import LightGBMConfig
from training.datasets import load_entities
from training.pipeline import train_entity
from training.split import TimeSplitConfig, time_split

pytestmark = pytest.mark.e2e


def test_both_runs_are_tracked_with_metrics_plots_and_oracle(trained_store: TrainedStore) -> None:
    client = MlflowClient(trained_store.settings.tracking_uri)
    for outcome in (trained_store.listing, trained_store.account):
        run = client.get_run(outcome.run_id)
        for key in ("test_roc_auc", "test_pr_auc", "test_precision_at_k", "test_recall_at_k",
                    "test_loss_captured_at_k", "test_brier", "test_ece", "oracle_test_pr_auc",
                    "oracle_test_loss_captured_at_k"):
            assert key in run.data.metrics, key
        artifacts = {a.path for a in client.list_artifacts(outcome.run_id, "evaluation")}
        assert {"evaluation/precision_recall.png", "evaluation/calibration.png",
                "evaluation/feature_importance.png"} <= artifacts
        assert outcome.promoted and outcome.version == "1"
        assert alias_version(client, outcome.model_name, CHAMPION) == "1"


def test_scorers_rank_the_later_window_well(trained_store: TrainedStore) -> None:
    listing = trained_store.listing.evaluation
    account = trained_store.account.evaluation
    for evaluation in (listing, account):
        assert evaluation.oracle is not None
        assert evaluation.model["roc_auc"] > 0.75
        # learning something real: well above the base rate, and not above the oracle by more than noise
        assert evaluation.model["pr_auc"] > 3 * evaluation.model["base_rate"]
        assert evaluation.model["pr_auc"] < evaluation.oracle["pr_auc"] + 0.05


def test_round_trip_through_the_registry_gives_equal_predictions(trained_store: TrainedStore, tmp_path) -> None:
    settings = trained_store.settings
    client = MlflowClient(settings.tracking_uri)
    loaded = load_scorer(client, trained_store.listing.model_name, alias=CHAMPION)
    data = load_entities(trained_store.dataset, "listing")
    frame = data.frame.tail(500).reset_index(drop=True)
    saved = ScorerArtifact.load(loaded.artifact.save(tmp_path / "copy"))
    columns = columns_from_frame(frame, LISTING_FEATURE_SET)
    np.testing.assert_array_equal(
        loaded.artifact.score_columns(columns).probability, saved.score_columns(columns).probability
    )
    # the generic pyfunc flavour scores raw frames too (our encoder handles the categories)
    mlflow.set_tracking_uri(settings.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{loaded.name}@{CHAMPION}")
    out = pyfunc.predict(frame)
    assert isinstance(out, pd.DataFrame)
    np.testing.assert_allclose(out["probability"].to_numpy(), saved.score_columns(columns).probability, rtol=0, atol=0)


def test_artifact_carries_schema_calibration_reasons_and_metadata(trained_store: TrainedStore) -> None:
    loaded = load_scorer(MlflowClient(trained_store.settings.tracking_uri), trained_store.account.model_name)
    artifact = loaded.artifact
    assert artifact.encoder.feature_names == artifact.feature_set.feature_names
    assert artifact.encoder.vocabularies["verification"]
    assert set(artifact.reason_texts) == set(artifact.feature_set.feature_names)
    meta = artifact.metadata
    assert {"split", "data_fingerprint", "test_metrics", "decision_thresholds", "run_id"} <= set(meta)
    assert meta["decision_thresholds"] == artifact.tiers.to_dict()


def test_weaker_challenger_is_registered_but_not_promoted(trained_store: TrainedStore) -> None:
    weak = small_train_config().model_copy(update={"lightgbm": LightGBMConfig(max_rounds=2, num_leaves=2)})
    outcome = train_entity(trained_store.settings, trained_store.dataset, "account", weak)
    client = MlflowClient(trained_store.settings.tracking_uri)
    assert outcome.version == "2" and not outcome.promoted
    assert outcome.champion_metric is not None
    assert outcome.evaluation.model["pr_auc"] <= outcome.champion_metric
    assert alias_version(client, outcome.model_name, CHAMPION) == "1"


def test_missing_alias_is_a_clear_error(trained_store: TrainedStore) -> None:
    client = MlflowClient(trained_store.settings.tracking_uri)
    with pytest.raises(ModelNotFoundError, match="no alias 'nonexistent'"):
        load_scorer(client, trained_store.listing.model_name, alias="nonexistent")


def test_split_keeps_a_label_delay_gap(small_dataset) -> None:
    data = load_entities(small_dataset, "listing")
    split = time_split(data, TimeSplitConfig(test_days=21, valid_days=14, gap_days=14))
    times = data.times
    assert times[split.train].max() < split.valid_start <= times[split.valid].min()
    assert times[split.valid].max() < split.valid_end
    assert (split.cutoff - split.valid_end).days == 14
    assert times[split.test].min() >= split.cutoff
    # only labels known at the cutoff are used for fitting
    assert (data.label_available_at[split.train | split.valid] <= split.cutoff).all()
