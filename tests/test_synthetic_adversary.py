"""Adaptive adversaries: after the detection wave violators drop their strongest tell, the truth stays put and
the other signals remain. Compared on one seed with the adversary on and off (default drift off, so that the
counterfeit wave and price inflation do not mix into the comparison)."""

from __future__ import annotations

import pandas as pd
import pytest

from synthetic.adversary import EVADED_TELLS
from synthetic.config import GeneratorConfig
from synthetic.generator import MarketplaceData, generate_marketplace

BASE = GeneratorConfig(seed=17, n_accounts=6000, n_listings=60000, include_default_drift=False)
ADVERSARY = BASE.adversary
WAVE_DAY = ADVERSARY.start_day(BASE.days)
START = pd.Timestamp(BASE.start)
SLANG = r"replica|1:1|mirror quality|super copy|dupe|\baaa\b|inspired by"
PLAIN_ITEM = (r"\b(?:vape|thc|oxycodone|ammo|ivory|rhino horn|pangolin|switchblade|suppressor|tiger bone|rx pills|"
              r"no prescription needed|80% lower)\b")
DISGUISED_ITEM = r"v4pe|v@pe|th-c|0xy|amm0|iv0ry|rh1no|pang0lin|supp\.ressor|sw1tchblade|x4nax|c0deine|r\.x pills"


def _with_adversary(config: GeneratorConfig, **changes: object) -> GeneratorConfig:
    return config.model_copy(update={"adversary": ADVERSARY.model_copy(update=changes)})


@pytest.fixture(scope="module")
def adaptive() -> MarketplaceData:
    return generate_marketplace(BASE)


@pytest.fixture(scope="module")
def static() -> MarketplaceData:
    return generate_marketplace(_with_adversary(BASE, enabled=False))


def _days(times: pd.Series) -> pd.Series:
    return (times - START).dt.total_seconds() / 86_400


def _after_ramp(times: pd.Series) -> pd.Series:
    return _days(times) >= WAVE_DAY + ADVERSARY.ramp_days


def _text(listings: pd.DataFrame) -> pd.Series:
    return (listings["title"] + " " + listings["description"].fillna("")).str.lower()


def test_the_truth_does_not_move_and_nothing_changes_before_the_wave(
    adaptive: MarketplaceData, static: MarketplaceData
) -> None:
    for name in ("listing_truth", "account_truth"):
        pd.testing.assert_frame_equal(adaptive.tables()[name].drop(columns="evaded_tell"),
                                      static.tables()[name].drop(columns="evaded_tell"))
    before = _days(adaptive.listings["created_at"]) < WAVE_DAY
    pd.testing.assert_frame_equal(adaptive.listings[before], static.listings[before])
    before = _days(adaptive.accounts["observed_at"]) < WAVE_DAY
    pd.testing.assert_frame_equal(adaptive.accounts[before], static.accounts[before])
    assert (adaptive.listing_truth.loc[_days(adaptive.listings["created_at"]) < WAVE_DAY, "evaded_tell"] == "").all()


def test_counterfeits_stop_showing_discounts_and_slang(adaptive: MarketplaceData, static: MarketplaceData) -> None:
    truth = adaptive.listing_truth
    late = _after_ramp(adaptive.listings["created_at"]) & truth["is_violation"]
    late &= truth["risk_type"] == "counterfeit"
    shown = {}
    for name, data in (("adaptive", adaptive), ("static", static)):
        listings = data.listings[late]
        loud = listings["discount_pct"] > 0.4
        slang = _text(listings).str.contains(SLANG)
        shown[name] = (loud.mean(), slang.mean(), (loud | slang).mean())
    assert late.sum() > 200
    for adapted, unchanged in zip(shown["adaptive"], shown["static"], strict=True):
        assert adapted < (1 - 0.3 * ADVERSARY.adapt_share) * unchanged, shown
    # the other signals remain: price against reference, shipping origin and image are untouched
    for column in ("price", "reference_price", "shipping_origin", "image_hash", "brand", "stock"):
        pd.testing.assert_series_equal(adaptive.listings.loc[late, column], static.listings.loc[late, column])


def test_prohibited_sellers_disguise_the_spelling(adaptive: MarketplaceData, static: MarketplaceData) -> None:
    truth = adaptive.listing_truth
    late = _after_ramp(adaptive.listings["created_at"]) & truth["is_violation"]
    late &= truth["risk_type"] == "prohibited_item"
    plain = {name: _text(d.listings[late]).str.contains(PLAIN_ITEM).mean() for name, d in
             (("adaptive", adaptive), ("static", static))}
    disguised = {name: _text(d.listings[late]).str.contains(DISGUISED_ITEM).mean() for name, d in
                 (("adaptive", adaptive), ("static", static))}
    assert plain["adaptive"] < 0.8 * plain["static"], plain
    assert disguised["adaptive"] > 1.2 * disguised["static"], disguised


def test_scam_sellers_keep_dispute_rates_normal(adaptive: MarketplaceData, static: MarketplaceData) -> None:
    truth = adaptive.account_truth
    late = _after_ramp(adaptive.accounts["observed_at"]) & truth["is_violation"]
    late &= truth["risk_type"] == "scam_seller"
    assert late.sum() > 30

    def rate(accounts: pd.DataFrame, column: str) -> float:
        rows = accounts[late].dropna(subset=[column, "orders_90d"])
        return float((rows[column] / (rows["orders_90d"] + 30)).mean())

    for column in ("chargebacks_90d", "disputes_90d"):
        assert rate(adaptive.accounts, column) < 0.8 * rate(static.accounts, column), column
    # late shipments, youth and verification still give them away
    for column in ("late_shipments_90d", "verification", "created_at", "orders_90d"):
        pd.testing.assert_series_equal(adaptive.accounts.loc[late, column], static.accounts.loc[late, column])


def test_adaptation_is_recorded(adaptive: MarketplaceData) -> None:
    recorded = adaptive.manifest["adversary"]
    assert recorded["enabled"] is True and recorded["wave_day"] == WAVE_DAY
    assert recorded["start"] == (START + pd.Timedelta(days=WAVE_DAY)).isoformat()
    for name, truth in (("listings", adaptive.listing_truth), ("accounts", adaptive.account_truth)):
        counts = truth["evaded_tell"][truth["evaded_tell"] != ""].value_counts().to_dict()
        assert recorded["rows_adapted"][name] == counts and counts
        assert set(truth["evaded_tell"]) <= set(EVADED_TELLS)
        assert not truth.loc[truth["evaded_tell"] != "", "is_violation"].eq(False).any()
    assert adaptive.manifest["config"]["adversary"]["adapt_share"] == ADVERSARY.adapt_share


def test_the_wave_and_the_share_are_configurable() -> None:
    small = BASE.model_copy(update={"n_accounts": 2000, "n_listings": 20000})
    early = generate_marketplace(_with_adversary(small, wave_day=20.0))
    adapted = early.listing_truth["evaded_tell"] != ""
    days = _days(early.listings["created_at"])
    assert days[adapted].min() >= 20.0 and (days[adapted] < WAVE_DAY).any()
    nobody = generate_marketplace(_with_adversary(small, adapt_share=0.0))
    assert (nobody.listing_truth["evaded_tell"] == "").all() and (nobody.account_truth["evaded_tell"] == "").all()
