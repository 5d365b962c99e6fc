"""The generated task is learnable but not trivial: a plain LightGBM on obvious features lands in between, and
no single observable carries most of the signal."""

from __future__ import annotations

from typing import Any

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


def _test_window(times: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    cut = times.quantile(0.6)
    return (times < cut).to_numpy(), (times >= cut).to_numpy()


def _fit(features: pd.DataFrame, label: pd.Series, train: np.ndarray) -> Any:
    model = lgb.LGBMClassifier(n_estimators=150, learning_rate=0.05, num_leaves=15, min_child_samples=40,
                               verbose=-1, n_jobs=1, deterministic=True)
    return model.fit(features[train], label[train])


def _time_split_auc(features: pd.DataFrame, label: pd.Series, times: pd.Series) -> float:
    train, test = _test_window(times)
    model = _fit(features, label, train)
    return float(roc_auc_score(label[test], model.predict_proba(features[test])[:, 1]))


def _listing_features(data: MarketplaceData) -> pd.DataFrame:
    listings, accounts = data.listings, data.accounts.set_index("account_id")
    seller = accounts.reindex(listings["seller_id"])
    # optional fields may be missing: no description reads as empty text, like the feature code does
    text = (listings["title"] + " " + listings["description"].fillna("")).str.lower()
    # prohibited goods are also named in light disguises ("v4pe", "th-c", "0xy")
    undisguised = text.str.translate(str.maketrans("0134@", "oiaea", "-."))
    return pd.DataFrame(
        {
            "log_ratio": np.log(listings["price"] / listings["reference_price"]),
            "discount": listings["discount_pct"],
            "stock": listings["stock"].astype(float),
            "category": listings["category"].astype("category").cat.codes,
            "cross_border": (listings["shipping_origin"] != seller["country"].to_numpy()).astype(float)
            .where(listings["shipping_origin"].notna() & seller["country"].notna().to_numpy()),
            "image_reuse": listings["image_hash"].map(listings["image_hash"].value_counts()),
            "kw_counterfeit": text.str.contains("replica|1:1|aaa|mirror|inspired by|dupe|copy").astype(int),
            "kw_prohibited": undisguised.str.contains("vape|thc|lower|prescription|rx|ivory|pangolin|solvent|ammo|"
                                                      "oxy|codeine|xanax|rhino|tiger bone|switchblade|suppressor")
            .astype(int),
            "kw_unsafe": text.str.contains("no ce mark|uncertified|bulk oem|export version|recalled|discontinued|"
                                           "no longer sold|as-is").astype(int),
            "kw_misleading": text.str.contains("original|guarantee|miracle|cure|10kg|proven|doctor|best in")
            .astype(int),
            "off_platform": text.str.contains("telegram|whatsapp|signal|wechat|website|link").astype(int),
            "shouting": (listings["title"] == listings["title"].str.upper()).astype(int),
            "seller_age": (seller["observed_at"] - seller["created_at"]).dt.days.to_numpy(),
            "seller_prior": seller["prior_violations"].to_numpy(dtype=float, na_value=np.nan),
            "seller_verification": seller["verification"].astype("category").cat.codes.to_numpy(),
        }
    )


def test_listing_risk_is_learnable_not_trivial(data: MarketplaceData) -> None:
    auc = _time_split_auc(_listing_features(data), data.listing_truth["label"], data.listings["created_at"])
    assert 0.78 < auc < 0.97


def test_several_moderate_signals_per_risk_type(data: MarketplaceData) -> None:
    """No single observable carries most of a risk type's signal: a tell shows on at most about half of the
    type's violations, and every type has at least three observables that each separate it a little."""
    features, truth = _listing_features(data), data.listing_truth
    loud = features["discount"] > 0.4
    innocent = ~truth["is_violation"]
    for risk_type in ("counterfeit", "misleading_listing"):
        violations = truth["is_violation"] & (truth["risk_type"] == risk_type)
        shown = loud[violations].mean()
        assert shown < 0.6, (risk_type, shown)
        assert shown / loud[innocent].mean() < 10, (risk_type, shown, loud[innocent].mean())
    for risk_type in sorted(truth["risk_type"].unique()):
        violations = truth["is_violation"] & (truth["risk_type"] == risk_type)
        rows = violations | innocent
        separation = {}
        for name, values in features[rows].items():
            known = values.notna().to_numpy()
            auc = roc_auc_score(violations[rows][known], values[known].astype(float))
            separation[name] = max(auc, 1 - auc)
        informative = [name for name, auc in separation.items() if auc >= 0.6]
        assert len(informative) >= 3, (risk_type, separation)
        assert max(separation.values()) < 0.9, (risk_type, separation)


def test_account_risk_is_learnable_not_trivial(data: MarketplaceData) -> None:
    a = data.accounts
    orders = (a["orders_90d"] + 1).astype(float)
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
            "prior": a["prior_violations"].astype(float),
            "engagement_gap": np.log(a["engagement_rate"] + 1e-6)
            + 0.25 * np.log(a["followers"].astype(float).clip(lower=1)),
            "category": a["category_focus"].astype("category").cat.codes,
            "shared_types": shared_types.reindex(a["account_id"]).fillna(0).to_numpy(),
        }
    )
    auc = _time_split_auc(features, data.account_truth["label"], a["observed_at"])
    assert 0.75 < auc < 0.97
