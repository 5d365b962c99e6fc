"""The generated task is learnable but not trivial: a plain LightGBM on obvious features lands in between."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from synthetic.config import GeneratorConfig
from synthetic.generator import MarketplaceData, generate_marketplace

lgb = pytest.importorskip("lightgbm")


@pytest.fixture(scope="module")
def data() -> MarketplaceData:
    return generate_marketplace(GeneratorConfig(seed=21, n_accounts=8000, n_listings=40000))


def _time_split_auc(features: pd.DataFrame, label: pd.Series, times: pd.Series) -> float:
    cut = times.quantile(0.6)
    train, test = (times < cut).to_numpy(), (times >= cut).to_numpy()
    model = lgb.LGBMClassifier(n_estimators=150, learning_rate=0.05, num_leaves=15, min_child_samples=40,
                               verbose=-1, n_jobs=1, deterministic=True)
    model.fit(features[train], label[train])
    return float(roc_auc_score(label[test], model.predict_proba(features[test])[:, 1]))


def test_listing_risk_is_learnable_not_trivial(data: MarketplaceData) -> None:
    listings, accounts = data.listings, data.accounts.set_index("account_id")
    seller = accounts.reindex(listings["seller_id"])
    text = (listings["title"] + " " + listings["description"]).str.lower()
    features = pd.DataFrame(
        {
            "log_ratio": np.log(listings["price"] / listings["reference_price"]),
            "discount": listings["discount_pct"],
            "stock": listings["stock"],
            "category": listings["category"].astype("category").cat.codes,
            "cross_border": (listings["shipping_origin"].to_numpy() != seller["country"].to_numpy()).astype(int),
            "image_reuse": listings["image_hash"].map(listings["image_hash"].value_counts()),
            "kw_counterfeit": text.str.contains("replica|1:1|aaa|mirror|inspired by|dupe|copy").astype(int),
            "kw_prohibited": text.str.contains("vape|thc|lower|prescription|rx|ivory|pangolin|solvent").astype(int),
            "kw_misleading": text.str.contains("original|guarantee|miracle|cure|10kg|proven|doctor|best in")
            .astype(int),
            "seller_age": (seller["observed_at"] - seller["created_at"]).dt.days.to_numpy(),
            "seller_prior": seller["prior_violations"].to_numpy(),
        }
    )
    auc = _time_split_auc(features, data.listing_truth["label"], listings["created_at"])
    assert 0.78 < auc < 0.97


def test_account_risk_is_learnable_not_trivial(data: MarketplaceData) -> None:
    a = data.accounts
    orders = a["orders_90d"] + 1
    ids = data.account_identifiers
    sharing = ids.groupby("identifier")["account_id"].transform("nunique")
    shared_types = ids[sharing > 1].groupby("account_id")["identifier_type"].nunique()
    features = pd.DataFrame(
        {
            "age": (a["observed_at"] - a["created_at"]).dt.days,
            "verification": a["verification"].astype("category").cat.codes,
            "creator": (a["account_type"] == "creator").astype(int),
            "chargeback_rate": a["chargebacks_90d"] / orders,
            "dispute_rate": a["disputes_90d"] / orders,
            "refund_rate": a["refunds_90d"] / orders,
            "late_rate": a["late_shipments_90d"] / orders,
            "prior": a["prior_violations"],
            "engagement_gap": np.log(a["engagement_rate"] + 1e-6) + 0.25 * np.log(a["followers"].clip(lower=1)),
            "category": a["category_focus"].astype("category").cat.codes,
            "shared_types": shared_types.reindex(a["account_id"]).fillna(0).to_numpy(),
        }
    )
    auc = _time_split_auc(features, data.account_truth["label"], a["observed_at"])
    assert 0.75 < auc < 0.97
