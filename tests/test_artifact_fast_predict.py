"""The single-row LightGBM fast path in `ScorerArtifact.predict_margin` gives exactly `Booster.predict`."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from features import FeatureEncoder
from features.listing import LISTING_FEATURE_SET
from models.artifact import ScorerArtifact, SingleRowPredictor
from models.calibration import PlattCalibration
from models.tiers import TierThresholds

N_FEATURES = 6
CATEGORICAL = [4, 5]


def _booster(rounds: int = 40) -> lgb.Booster:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, N_FEATURES))
    x[:, CATEGORICAL] = rng.integers(0, 12, size=(3000, len(CATEGORICAL)))
    x[rng.random(x.shape) < 0.15] = np.nan
    y = ((np.nan_to_num(x[:, 0]) + (x[:, 4] == 3) + rng.normal(scale=0.5, size=3000)) > 0.5).astype(int)
    params = {"objective": "binary", "num_leaves": 15, "verbosity": -1, "seed": 1, "deterministic": True}
    data = lgb.Dataset(x, y, categorical_feature=CATEGORICAL)
    return lgb.train(params, data, num_boost_round=rounds)


def _rows() -> np.ndarray:
    rng = np.random.default_rng(11)
    x = rng.normal(scale=2.0, size=(500, N_FEATURES))
    # categories seen in training, unseen ones and missing; numeric NaN, zeros and infinities
    x[:, CATEGORICAL] = rng.integers(0, 20, size=(500, len(CATEGORICAL)))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[::7, 1] = 0.0
    x[::11, 2] = np.inf
    x[::13, 3] = -np.inf
    return x


def _artifact(booster: lgb.Booster) -> ScorerArtifact:
    return ScorerArtifact(booster=booster, encoder=FeatureEncoder(LISTING_FEATURE_SET, {}),
                          calibration=PlattCalibration(slope=1.0, intercept=0.0),
                          tiers=TierThresholds(p0=0.9, p1=0.5, p2=0.1), reason_texts={}, metadata={})


def test_single_row_fast_path_equals_booster_predict() -> None:
    booster = _booster()
    rows = _rows()
    expected = booster.predict(rows, raw_score=True, num_threads=1)
    predictor = SingleRowPredictor(booster)
    got = np.concatenate([predictor.predict(rows[i : i + 1]) for i in range(len(rows))])
    assert np.array_equal(got.view(np.uint64), expected.view(np.uint64))


def test_predict_margin_uses_the_best_iteration_like_booster_predict() -> None:
    booster = _booster()
    booster.best_iteration = 7
    artifact = _artifact(booster)
    rows = _rows()
    expected = booster.predict(rows, raw_score=True)
    got = np.concatenate([artifact.predict_margin(rows[i : i + 1], num_threads=1) for i in range(len(rows))])
    assert np.array_equal(got, expected)
    assert not np.array_equal(expected, booster.predict(rows, raw_score=True, num_iteration=-1))
    # a changed best iteration is followed, not served from the stale predictor
    booster.best_iteration = -1
    assert artifact.predict_margin(rows[:1])[0] == booster.predict(rows[:1], raw_score=True, num_iteration=-1)[0]


def test_batches_and_odd_shapes_go_through_booster_predict() -> None:
    booster = _booster()
    artifact = _artifact(booster)
    rows = _rows()
    assert np.array_equal(artifact.predict_margin(rows), booster.predict(rows, raw_score=True))
    fortran = np.asfortranarray(rows[:1])
    assert np.array_equal(artifact.predict_margin(fortran), booster.predict(fortran, raw_score=True))
    with pytest.raises(lgb.basic.LightGBMError):
        artifact.predict_margin(rows[:1, :-1])


def test_pickled_artifact_rebuilds_its_predictor() -> None:
    # Dask ships artifacts to workers with cloudpickle (the feature declarations hold lambdas)
    cloudpickle = pytest.importorskip("cloudpickle")
    artifact = _artifact(_booster())
    rows = _rows()
    before = artifact.predict_margin(rows[:1])
    assert artifact._single_row is not None
    copy = cloudpickle.loads(cloudpickle.dumps(artifact))
    assert copy._single_row is None
    assert np.array_equal(copy.predict_margin(rows[:1]), before)
