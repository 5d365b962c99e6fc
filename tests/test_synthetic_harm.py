"""Harm in the hidden truth, apart from money: cheap illegal and dangerous goods carry little money and a lot
of harm, and an oracle can rank by either."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthetic.config import GeneratorConfig
from synthetic.generator import MarketplaceData, generate_marketplace
from synthetic.items import ITEM_KIND_NAMES, kinds_of
from synthetic.vocab import RISK_TYPE_HARM_CLASS

CONFIG = GeneratorConfig(seed=7, n_accounts=5000, n_listings=60000)
PROHIBITED_KINDS = [ITEM_KIND_NAMES[i] for i in kinds_of("prohibited_item")]
ITEM_CLASSES = ["illegal_or_dangerous", "safety"]


@pytest.fixture(scope="module")
def data() -> MarketplaceData:
    return generate_marketplace(CONFIG)


def _text(listings: pd.DataFrame) -> pd.Series:
    return (listings["title"] + " " + listings["description"].fillna("")).str.lower()


def test_harm_columns_are_consistent(data: MarketplaceData) -> None:
    for truth in (data.listing_truth, data.account_truth):
        assert (truth["harm_if_violation"] > 0).all()
        np.testing.assert_allclose(truth["harm"], truth["harm_if_violation"].where(truth["is_violation"], 0.0))
        assert (truth["harm_class"] == truth["risk_type"].map(RISK_TYPE_HARM_CLASS)).all()
    assert set(data.listing_truth["harm_class"]) == {"illegal_or_dangerous", "safety", "ip_infringement", "misleading"}
    assert set(data.account_truth["harm_class"]) == {"scam", "ip_infringement", "fake_engagement"}
    assert set(data.listing_truth["item_kind"]) == {"", *ITEM_KIND_NAMES}
    # the goods on offer and the type they violate as agree
    offered = data.listing_truth[data.listing_truth["is_violation"] & (data.listing_truth["item_kind"] != "")]
    expected = offered["item_kind"].isin(PROHIBITED_KINDS).map({True: "prohibited_item", False: "unsafe_product"})
    assert (offered["risk_type"] == expected).mean() > 0.9


def test_illegal_goods_are_cheap_small_stock_and_harmful(data: MarketplaceData) -> None:
    listings, truth = data.listings, data.listing_truth
    violation = truth["is_violation"]
    illegal = violation & truth["item_kind"].isin(PROHIBITED_KINDS)
    counterfeit = violation & (truth["risk_type"] == "counterfeit")
    assert illegal.sum() > 100
    assert listings.loc[illegal, "price"].between(1, 60).mean() > 0.85
    assert listings.loc[illegal, "stock"].dropna().median() <= 5
    assert (listings.loc[illegal, "price"] <= 1.1).mean() > 0.02  # "price 1, message me"
    # little money, much harm: the reverse of a counterfeit
    assert truth.loc[illegal, "loss_if_missed"].median() < 0.5 * truth.loc[counterfeit, "loss_if_missed"].median()
    assert truth.loc[illegal, "harm"].median() > 10 * truth.loc[counterfeit, "harm"].median()
    unsafe = violation & (truth["harm_class"] == "safety")
    assert truth.loc[unsafe, "harm"].median() > 10 * truth.loc[counterfeit, "harm"].median()


def test_ranking_by_money_misses_harm(data: MarketplaceData) -> None:
    truth = data.listing_truth
    violations = truth[truth["is_violation"]]
    item_class = violations["harm_class"].isin(ITEM_CLASSES)
    by_loss = violations["loss_if_missed"] >= violations["loss_if_missed"].quantile(0.9)
    by_harm = violations["harm"] >= violations["harm"].quantile(0.9)
    assert item_class[by_loss].mean() < 0.1
    assert item_class[by_harm].mean() > 0.6
    # the oracle can order by expected harm as it does by expected loss, and that catches more harm
    k = len(truth) // 50
    expected_harm = truth["true_prob"] * truth["harm_if_violation"]
    expected_loss = truth["true_prob"] * truth["exposure_if_violation"]
    caught_by_harm = truth["harm"][expected_harm.nlargest(k).index].sum()
    caught_by_loss = truth["harm"][expected_loss.nlargest(k).index].sum()
    assert caught_by_harm > 1.5 * caught_by_loss


def test_prohibited_goods_are_named_plainly_disguised_or_not_at_all(data: MarketplaceData) -> None:
    listings, truth = data.listings, data.listing_truth
    text = _text(listings)
    plain = text.str.contains(r"\b(?:vape|thc|oxycodone|ammo|ivory|rhino horn|pangolin|switchblade|suppressor|"
                              r"tiger bone)\b")
    disguised = text.str.contains(r"v4pe|v@pe|th-c|0xy|amm0|iv0ry|rh1no|pang0lin|supp\.ressor|sw1tchblade|x4nax|"
                                  r"c0deine")
    offered = truth["is_violation"] & truth["item_kind"].isin(PROHIBITED_KINDS)
    assert 0.25 < plain[offered].mean() < 0.8
    assert disguised[offered].mean() > 0.1
    assert (~plain & ~disguised)[offered].mean() > 0.1  # euphemisms ("party pen cartridge")
    # honest listings use some of the same words ("nicotine patches", "ivory throw pillow", "ammo can")
    assert plain[~truth["is_violation"] & (truth["item_kind"] == "")].mean() > 0.005
    # bundles name goods of two kinds ("ammo" next to "thc cart")
    kinds = [r"oxycodone|prescription|rx pills|discreet", r"vape|thc|nicotine", r"ammo|lower|suppressor|untraceable",
             r"ivory|rhino horn|pangolin|tiger bone"]
    named_kinds = sum(text.str.contains(k).astype(int) for k in kinds)
    assert (named_kinds[offered] >= 2).mean() > 0.01


def test_account_harm_grows_with_the_people_reached(data: MarketplaceData) -> None:
    accounts, truth = data.accounts, data.account_truth
    scam = (truth["risk_type"] == "scam_seller") & accounts["orders_90d"].notna()
    orders = accounts.loc[scam, "orders_90d"].astype(float)
    assert truth.loc[scam, "harm_if_violation"].corr(orders, method="spearman") > 0.7
    creators = (truth["risk_type"] == "fake_engagement") & accounts["followers"].notna()
    followers = accounts.loc[creators, "followers"].astype(float)
    assert truth.loc[creators, "harm_if_violation"].corr(followers, method="spearman") > 0.7


def test_harm_follows_the_configured_severity() -> None:
    small = CONFIG.model_copy(update={"n_accounts": 2000, "n_listings": 20000})
    default = generate_marketplace(small).listing_truth
    doubled = small.harm.model_copy(update={"severity": {**small.harm.severity, "illegal_or_dangerous": 20.0}})
    louder = generate_marketplace(small.model_copy(update={"harm": doubled})).listing_truth
    illegal = default["harm_class"] == "illegal_or_dangerous"
    np.testing.assert_allclose(louder.loc[illegal, "harm_if_violation"],
                               2 * default.loc[illegal, "harm_if_violation"], rtol=1e-3)
    np.testing.assert_allclose(louder.loc[~illegal, "harm_if_violation"], default.loc[~illegal, "harm_if_violation"])
    pd.testing.assert_series_equal(louder["loss_if_missed"], default["loss_if_missed"])
