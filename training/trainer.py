"""Fit a scorer artifact: LightGBM with early stopping, Platt calibration, tier thresholds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from features import FeatureEncoder, FeatureSet
from features.graph import GraphSnapshot
from models.artifact import ScorerArtifact
from models.calibration import PlattCalibration
from models.tiers import TierThresholds
from training.config import LightGBMConfig, TierConfig, TrainConfig
from training.datasets import LabelledEntities
from training.split import TimeSplit


def _progress_callback(bar: tqdm) -> Callable[[Any], None]:
    def callback(env: Any) -> None:
        bar.update(1)
        if env.evaluation_result_list:
            _, metric, value, _ = env.evaluation_result_list[0]
            bar.set_postfix({metric: f"{value:.4f}"}, refresh=False)

    return callback


def _precision_threshold(probability: np.ndarray, label: np.ndarray, target: float) -> float | None:
    """Lowest probability above which the validation precision is still at least `target`."""
    order = np.argsort(-probability, kind="stable")
    precision = np.cumsum(label[order]) / np.arange(1, len(order) + 1)
    ok = np.nonzero(precision >= target)[0]
    return float(probability[order][ok[-1]]) if len(ok) else None


def choose_tiers(
    probability: np.ndarray, label: np.ndarray, days: np.ndarray, k: int, config: TierConfig
) -> TierThresholds:
    """P2 holds what capacity can review per day; P1 and P0 the slices precise enough to act on first."""
    kth = pd.Series(probability).groupby(days).apply(lambda s: np.sort(s.to_numpy())[::-1][min(k, len(s)) - 1])
    p2 = float(np.median(kth.to_numpy()))
    p1 = _precision_threshold(probability, label, config.p1_precision)
    p0 = _precision_threshold(probability, label, config.p0_precision)
    top = float(probability.max())
    p1 = max(p1 if p1 is not None else top, p2)
    p0 = max(p0 if p0 is not None else top, p1)
    return TierThresholds(p0=p0, p1=p1, p2=p2)


def fit_booster(
    x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray, feature_set: FeatureSet,
    lgbm: LightGBMConfig, desc: str, progress: bool = False,
) -> tuple[lgb.Booster, np.ndarray]:
    """LightGBM with early stopping on model matrices; returns the booster cut to its best iteration (so the
    artifact is exactly what was validated) and the validation margin."""
    names = feature_set.feature_names
    dtrain = lgb.Dataset(x_train, y_train, feature_name=names, categorical_feature=feature_set.categorical_features,
                         free_raw_data=True)
    dvalid = lgb.Dataset(x_valid, y_valid, reference=dtrain)
    with tqdm(total=lgbm.max_rounds, desc=desc, disable=not progress, leave=False) as bar:
        booster = lgb.train(
            lgbm.params(), dtrain, num_boost_round=lgbm.max_rounds, valid_sets=[dvalid], valid_names=["valid"],
            callbacks=[lgb.early_stopping(lgbm.early_stopping_rounds, verbose=False), _progress_callback(bar)],
        )
    booster.free_dataset()
    margin_valid = np.asarray(booster.predict(x_valid, raw_score=True, num_iteration=booster.best_iteration))
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration)), margin_valid


def assemble_scorer(
    booster: lgb.Booster, encoder: FeatureEncoder, margin_valid: np.ndarray, label_valid: np.ndarray,
    days_valid: np.ndarray, config: TrainConfig, *, graph: GraphSnapshot | None, metadata: dict[str, Any],
) -> ScorerArtifact:
    """The one way a fitted booster becomes a scorer (single machine, Dask, retraining): Platt calibration
    and tier thresholds on the validation window, reason texts from the declarations, the link-graph
    snapshot the features were computed with, and the metadata every artifact carries."""
    fs = encoder.feature_set
    calibration = PlattCalibration.fit(margin_valid, label_valid)
    k = config.capacity(fs.entity)
    tiers = choose_tiers(calibration.transform(margin_valid), label_valid, days_valid, k, config.tiers)
    return ScorerArtifact(
        booster=booster,
        encoder=encoder,
        calibration=calibration,
        tiers=tiers,
        reason_texts={spec.name: spec.reason for spec in fs.features},
        graph=graph,
        metadata={
            "entity": str(fs.entity),
            "best_iteration": int(booster.current_iteration()),
            "review_capacity_per_day": k,
            "lightgbm": config.lightgbm.model_dump(),
            **metadata,
        },
    )


def fit_scorer(
    data: LabelledEntities, split: TimeSplit, config: TrainConfig, progress: bool = False
) -> tuple[ScorerArtifact, dict[str, float]]:
    fs = data.feature_set
    train, valid = data.subset(split.train), data.subset(split.valid)
    train_cols = train.columns()
    encoder = FeatureEncoder(fs).fit(train_cols)
    x_train = encoder.transform(train_cols)
    x_valid = encoder.transform(valid.columns())
    booster, margin_valid = fit_booster(x_train, train.label, x_valid, valid.label, fs, config.lightgbm,
                                        desc=f"train {fs.entity}", progress=progress)
    artifact = assemble_scorer(
        booster, encoder, margin_valid, valid.label, valid.times.dt.floor("D").to_numpy(), config,
        graph=None if data.graph is None else data.graph.known_by(split.cutoff.timestamp()),
        metadata={"split": split.describe()},
    )
    return artifact, {"best_iteration": float(booster.current_iteration())}
