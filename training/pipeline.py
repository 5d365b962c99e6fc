"""`triage train`: load, split, fit, evaluate against the oracle, track in MLflow, register, and move the
`champion` alias only when the new model beats the current champion on the same test window."""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from models.registry import CHAMPION, alias_version, load_scorer, log_scorer, move_alias
from stores.engine import make_engine
from stores.migrate import upgrade
from training.config import TrainConfig
from training.datasets import LabelledEntities, load_entities
from training.evaluation import WindowEvaluation, evaluate_window
from training.plots import plot_calibration, plot_feature_importance, plot_precision_recall
from training.promotion import challenger_wins
from training.split import TimeSplitConfig, time_split
from training.trainer import fit_scorer
from triage.settings import TriageSettings


@dataclass(frozen=True)
class TrainingOutcome:
    run_id: str
    model_name: str
    version: str
    promoted: bool
    champion_before: str | None
    evaluation: WindowEvaluation
    champion_metric: float | None


def data_fingerprint(data: LabelledEntities) -> str:
    hashed = pd.util.hash_pandas_object(data.frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes() + data.label.tobytes()).hexdigest()[:16]


def configure_mlflow(settings: TriageSettings) -> MlflowClient:
    """Point MLflow at the configured store and make sure the experiment exists (artifacts beside it)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient(settings.tracking_uri)
    if client.get_experiment_by_name(settings.experiment) is None:
        location = settings.artifact_location if settings.tracking_uri.startswith("sqlite:") else None
        client.create_experiment(settings.experiment, artifact_location=location)
    mlflow.set_experiment(settings.experiment)
    return client


def train_entity(
    settings: TriageSettings, dataset_dir: Path, entity: str, config: TrainConfig, progress: bool = False,
    scheduler: str | None = None,
) -> TrainingOutcome:
    """`scheduler` (a Dask scheduler address) fits on the cluster through `lightgbm.dask`; evaluation, tracking
    and promotion stay the same."""
    client = configure_mlflow(settings)
    data = load_entities(dataset_dir, entity)
    split_cfg = config.split
    split = time_split(data, TimeSplitConfig(split_cfg.test_days, split_cfg.valid_days, split_cfg.gap_days))
    k = config.capacity(entity)
    model_name = settings.model_name(entity)
    with mlflow.start_run(run_name=f"train-{entity}") as run:
        mlflow.set_tags({"entity": entity, "job": "train", "dataset": str(dataset_dir)})
        mlflow.log_params({"entity": entity, "data_fingerprint": data_fingerprint(data), "review_capacity_per_day": k,
                           **{f"split.{k_}": v for k_, v in split.describe().items()},
                           **{f"lgbm.{k_}": v for k_, v in config.lightgbm.model_dump().items()}})
        if scheduler is None:
            artifact, fit_info = fit_scorer(data, split, config, progress=progress)
        else:
            # imported here: the Dask stack (~1 s) loads only for training on a cluster
            from training.distributed import train_distributed  # noqa: PLC0415

            artifact = train_distributed(dataset_dir, entity, config, scheduler)
            fit_info = {"best_iteration": float(artifact.booster.current_iteration())}
            mlflow.set_tag("dask_scheduler", scheduler)
        test = data.subset(split.test)
        evaluation = evaluate_window(artifact, test, k)
        artifact.metadata.update(
            data_fingerprint=data_fingerprint(data), test_metrics=evaluation.model,
            oracle_test_metrics=evaluation.oracle, run_id=run.info.run_id,
            decision_thresholds=artifact.tiers.to_dict(),
        )
        mlflow.log_metrics({f"test_{k_}": v for k_, v in evaluation.model.items()} | fit_info)
        if evaluation.oracle is not None:
            mlflow.log_metrics({f"oracle_test_{k_}": v for k_, v in evaluation.oracle.items()})
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            plot_precision_recall(evaluation.scored, out / "precision_recall.png")
            plot_calibration(evaluation.scored, out / "calibration.png")
            plot_feature_importance(artifact, out / "feature_importance.png")
            (out / "test_metrics.json").write_text(json.dumps(evaluation.table().to_dict(orient="index"), indent=2))
            mlflow.log_artifacts(str(out), artifact_path="evaluation")
        info = log_scorer(artifact, registered_model_name=model_name)
        version = str(info.registered_model_version)
        champion_before = alias_version(client, model_name, CHAMPION)
        champion_metric = None
        promoted = champion_before is None
        if champion_before is not None:
            champion = load_scorer(client, model_name, version=champion_before)
            champion_metric = evaluate_window(champion.artifact, test, k).model[config.promotion_metric]
            challenger_metric = evaluation.model[config.promotion_metric]
            promoted = challenger_wins(challenger_metric, champion_metric, config.promotion_metric,
                                       config.promotion_margin)
            mlflow.log_metric(f"champion_test_{config.promotion_metric}", champion_metric)
        if promoted:
            reason = (f"train run {run.info.run_id}: test {config.promotion_metric} "
                      f"{evaluation.model[config.promotion_metric]:.4f}"
                      + (f" vs champion {champion_metric:.4f}" if champion_metric is not None else " (no champion)"))
            engine = make_engine(settings.database_url)
            try:
                upgrade(engine)
                move_alias(client, engine, model_name, CHAMPION, version, set_by="train", reason=reason)
            finally:
                engine.dispose()
        mlflow.set_tags({"registered_version": version, "promoted": str(promoted),
                         "champion_before": champion_before or "none"})
    return TrainingOutcome(run.info.run_id, model_name, version, promoted, champion_before, evaluation,
                           champion_metric)
