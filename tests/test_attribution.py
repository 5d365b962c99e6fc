"""Path attribution (models/attribution.py): exact sums, row independence, and agreement with TreeSHAP where
the two must agree (a feature the model never splits on gets nothing from either)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from models.attribution import LeafPathAttribution


def _booster() -> tuple[lgb.Booster, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 6))
    x[rng.random(x.shape) < 0.05] = np.nan
    x[:, 5] = 0.0  # constant: never split on
    y = (np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) * np.nan_to_num(x[:, 2]) + rng.normal(size=3000) > 0)
    params = {"objective": "binary", "num_leaves": 15, "verbosity": -1, "seed": 1, "min_data_in_leaf": 5}
    return lgb.train(params, lgb.Dataset(x, y.astype(int)), 40), x[:200]


def test_attributions_sum_to_the_raw_score() -> None:
    booster, x = _booster()
    attribution = LeafPathAttribution.from_booster(booster)
    contrib = attribution.contributions(booster, x)
    raw = np.asarray(booster.predict(x, raw_score=True))
    np.testing.assert_allclose(contrib.sum(axis=1) + attribution.bias, raw, rtol=0, atol=1e-9)


def test_single_row_equals_its_row_in_a_batch() -> None:
    booster, x = _booster()
    attribution = LeafPathAttribution.from_booster(booster)
    batch = attribution.contributions(booster, x)
    np.testing.assert_array_equal(attribution.contributions(booster, x[3:4])[0], batch[3])


def test_unused_feature_gets_nothing_and_the_main_feature_leads_as_in_treeshap() -> None:
    booster, x = _booster()
    path = LeafPathAttribution.from_booster(booster).contributions(booster, x)
    shap = np.asarray(booster.predict(x, pred_contrib=True))[:, :-1]
    assert np.all(path[:, 5] == 0.0) and np.all(shap[:, 5] == 0.0)
    # feature 0 carries most of the signal: both methods rank it first by mean |effect|
    assert int(np.argmax(np.abs(path).mean(axis=0))) == int(np.argmax(np.abs(shap).mean(axis=0))) == 0
