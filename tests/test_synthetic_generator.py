"""The synthetic marketplace generator: schema, determinism, realism and drift."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthetic.config import DriftSpec, GeneratorConfig
from synthetic.generator import MarketplaceData, generate_marketplace
from synthetic.schema import NULLABLE, TABLES, TIMESTAMP

CONTRACT = Path(__file__).resolve().parents[1] / "docs" / "data-contract.md"
SMALL = GeneratorConfig(seed=11, n_accounts=3000, n_listings=30000)
START = pd.Timestamp("2026-01-01", tz="UTC")


@pytest.fixture(scope="module")
def data() -> MarketplaceData:
    return generate_marketplace(SMALL)


def _contract_columns() -> dict[str, list[str]]:
    """Column names per file, read from the markdown tables of the data contract."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in CONTRACT.read_text().splitlines():
        heading = re.match(r"^## (.+)$", line)
        if heading:
            files = re.findall(r"(\w+)\.parquet", heading.group(1))
            current = [] if files else None
            for f in files:
                sections[f] = current if current is not None else []
            continue
        if current is not None and line.startswith("| `"):
            first_cell = line.split("|")[1]
            current.extend(re.findall(r"`(\w+)`", first_cell))
    return sections


def test_schema_matches_contract(data: MarketplaceData) -> None:
    contract = _contract_columns()
    assert set(contract) == set(TABLES)
    for name, frame in data.tables().items():
        expected = [c for c in contract[name] if c not in ("account_id", "listing_id") or c in TABLES[name]]
        if name == "listing_truth":
            expected = [c for c in expected if c != "ring_id"]
        if name == "account_truth":
            expected = [c for c in expected if c != "item_kind"]
        assert list(TABLES[name]) == expected, name
        if name in ("account_truth", "listing_truth"):
            assert list(frame.columns)[: len(expected)] == expected
        else:
            assert list(frame.columns) == expected, name
        for column, dtype in TABLES[name].items():
            assert str(frame[column].dtype) == dtype, (name, column, frame[column].dtype)
            if dtype == TIMESTAMP:
                assert str(frame[column].dt.tz) == "UTC"
            # optional fields are really missing sometimes; every other column never is
            if column in NULLABLE[name]:
                assert 0 < frame[column].isna().mean() < 0.5, (name, column)
            else:
                assert not frame[column].isna().any(), (name, column)


def test_ids_and_references(data: MarketplaceData) -> None:
    accounts = data.accounts
    assert accounts["account_id"].is_unique and data.listings["listing_id"].is_unique
    assert accounts["account_id"].str.fullmatch(r"A\d{6,}").all()
    assert data.listings["listing_id"].str.fullmatch(r"L\d{7,}").all()
    known = set(accounts["account_id"])
    assert set(data.listings["seller_id"]) <= known
    assert set(data.account_identifiers["account_id"]) <= known
    assert (data.account_truth["account_id"] == accounts["account_id"]).all()
    assert (data.listing_truth["listing_id"] == data.listings["listing_id"]).all()
    per_account = data.account_identifiers.groupby("account_id").size()
    assert len(per_account) == len(accounts)
    assert per_account.between(1, 4).all()
    assert set(data.account_identifiers["identifier_type"]) == {"device", "payment", "address", "ip_range"}


def test_value_domains(data: MarketplaceData) -> None:
    a, listings = data.accounts, data.listings
    assert set(a["account_type"]) == {"seller", "creator"}
    assert 0.78 < (a["account_type"] == "seller").mean() < 0.92
    assert set(a["verification"].dropna()) <= {"none", "email", "phone", "id"}
    assert a["category_focus"].nunique() == 10
    counts = ["orders_90d", "refunds_90d", "chargebacks_90d", "disputes_90d", "late_shipments_90d"]
    assert (a[counts].fillna(0) >= 0).all().all()
    both = a[["refunds_90d", "orders_90d"]].dropna()
    assert (both["refunds_90d"] <= both["orders_90d"]).all()
    assert (a.loc[a["account_type"] == "seller", "followers"].dropna() == 0).mean() > 0.6
    assert listings["discount_pct"].dropna().between(0, 0.95).all()
    assert (listings["price"] > 0).all() and (listings["stock"].dropna() >= 1).all()
    assert (listings["brand"].dropna() == "unbranded").mean() > 0.1
    assert listings["shipping_origin"].dropna().str.fullmatch(r"[A-Z]{2}").all()
    assert set(listings["source"]) == {"app", "web", "bulk_feed", "api"}
    risk_l = set(data.listing_truth["risk_type"])
    assert risk_l == {"counterfeit", "prohibited_item", "misleading_listing", "unsafe_product"}
    assert set(data.account_truth["risk_type"]) <= {"scam_seller", "fake_engagement", "counterfeit"}


def test_times_are_consistent(data: MarketplaceData) -> None:
    end = START + pd.Timedelta(days=SMALL.days)
    a, listings = data.accounts, data.listings
    assert a["observed_at"].between(START, end).all()
    assert (a["created_at"] <= a["observed_at"]).all()
    assert (a["created_at"] < START).mean() > 0.5  # mostly established accounts
    assert listings["created_at"].between(START, end).all()
    assert listings["created_at"].is_monotonic_increasing  # ids follow creation order
    seller_created = a.set_index("account_id")["created_at"].reindex(listings["seller_id"]).to_numpy()
    assert (listings["created_at"].to_numpy() >= seller_created).all()
    # mild growth: the last four weeks are busier than the first four
    first = (listings["created_at"] < START + pd.Timedelta(days=28)).sum()
    last = (listings["created_at"] >= end - pd.Timedelta(days=28)).sum()
    assert last > first


def test_same_seed_same_data_and_different_seed_differs() -> None:
    config = GeneratorConfig(seed=5, n_accounts=500, n_listings=4000)
    one, two = generate_marketplace(config), generate_marketplace(config)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(one, name), getattr(two, name))
    assert one.manifest == two.manifest
    other = generate_marketplace(config.model_copy(update={"seed": 6}))
    assert not other.listings["price"].equals(one.listings["price"])
    assert not other.account_identifiers["identifier"].equals(one.account_identifiers["identifier"])


def test_base_rates_are_realistic(data: MarketplaceData) -> None:
    listing_rate = data.listing_truth["is_violation"].mean()
    account_rate = data.account_truth["is_violation"].mean()
    assert 0.02 <= listing_rate <= 0.045
    assert 0.025 <= account_rate <= 0.07
    assert data.listing_truth["true_prob"].between(0, 1).all()
    assert abs(data.manifest["rates"]["listing_violation_rate"] - listing_rate) < 1e-12


def test_labels_are_noisy_and_delayed(data: MarketplaceData) -> None:
    for truth, times in (
        (data.listing_truth, data.listings["created_at"]),
        (data.account_truth, data.accounts["observed_at"]),
    ):
        delay_days = (truth["label_available_at"] - times).dt.total_seconds() / 86400
        assert (delay_days >= SMALL.labels.delay_min_days - 1e-6).all()
        assert (delay_days <= SMALL.labels.delay_max_days + 1e-6).all()
        assert delay_days.median() < (SMALL.labels.delay_min_days + SMALL.labels.delay_max_days) / 2  # skewed
        assert set(truth["label"].unique()) <= {0, 1}
    lt = data.listing_truth
    missed = ((lt["label"] == 0) & lt["is_violation"]).sum() / lt["is_violation"].sum()
    assert 0.08 < missed < 0.25
    false_confirmed = ((lt["label"] == 1) & ~lt["is_violation"]).sum() / (~lt["is_violation"]).sum()
    assert 0 < false_confirmed < 0.01


def test_loss_is_heavy_tailed_and_consistent(data: MarketplaceData) -> None:
    for truth in (data.listing_truth, data.account_truth):
        assert (truth["exposure_if_violation"] > 0).all()
        expected = truth["exposure_if_violation"].where(truth["is_violation"], 0.0)
        np.testing.assert_allclose(truth["loss_if_missed"], expected)
    loss = np.sort(data.listing_truth["loss_if_missed"].to_numpy())[::-1]
    assert loss[: len(loss) // 100].sum() / loss.sum() > 0.4
    violations = np.sort(loss[loss > 0])[::-1]
    assert violations[: len(violations) // 10].sum() / violations.sum() > 0.35
    # prohibited items carry fines on top of the goods' value
    exposure = data.listing_truth.groupby("risk_type")["exposure_if_violation"].median()
    assert exposure["prohibited_item"] > exposure["misleading_listing"]


def test_rings_share_identifiers_and_are_riskier(data: MarketplaceData) -> None:
    truth = data.account_truth
    ring_members = truth.loc[truth["ring_id"] != "", ["account_id", "ring_id"]]
    assert len(ring_members) > 0.01 * len(truth)
    assert set(truth.loc[truth["ring_id"] != "", "pattern"]) == {"ring"}
    ids = data.account_identifiers.merge(ring_members, on="account_id")
    shared = ids.groupby(["identifier_type", "identifier"])["account_id"].transform("nunique") > 1
    assert ids.loc[shared, "account_id"].nunique() == len(ring_members)
    # members link to their own ring, not just to anyone
    same_ring = ids[shared].groupby(["identifier_type", "identifier"])["ring_id"].nunique()
    assert (same_ring == 1).all()
    in_ring = truth["ring_id"] != ""
    assert truth.loc[in_ring, "true_prob"].mean() > 5 * truth.loc[~in_ring, "true_prob"].mean()
    # ring members look only moderately unusual on their own: many are not brand new
    ages = (data.accounts["observed_at"] - data.accounts["created_at"]).dt.days
    assert 0.1 < (ages[in_ring] > 90).mean() < 0.8
    # benign sharing exists too, so sharing alone is not proof
    all_shared = data.account_identifiers.groupby("identifier")["account_id"].transform("nunique") > 1
    sharers = set(data.account_identifiers.loc[all_shared, "account_id"])
    assert len(sharers - set(ring_members["account_id"])) > len(ring_members)


def test_counterfeits_are_cheap_and_wordy(data: MarketplaceData) -> None:
    listings, truth = data.listings, data.listing_truth
    ratio = listings["price"] / listings["reference_price"]
    counterfeit = truth["is_violation"] & (truth["risk_type"] == "counterfeit")
    assert ratio[counterfeit].mean() < 0.8
    assert ratio[counterfeit].mean() < ratio[~truth["is_violation"]].mean() - 0.2
    text = (listings["title"] + " " + listings["description"]).str.lower()
    replica = text.str.contains("replica|1:1|mirror quality|super copy", regex=True)
    assert replica[truth["is_violation"]].mean() > 5 * replica[~truth["is_violation"]].mean()
    # many violations carry no tell-tale term at all
    any_term = text.str.contains("replica|1:1|aaa|mirror|inspired by|dupe|copy|vape|thc|lower|prescription|rx|"
                                 "ivory|pangolin|solvent|original|guarantee|miracle|cure|10kg|proven|doctor|best in",
                                 regex=True)
    assert any_term[truth["is_violation"]].mean() < 0.75
    reused = listings["image_hash"].duplicated(keep=False)
    assert reused[truth["is_violation"]].mean() > 2 * reused[~truth["is_violation"]].mean()


def test_default_drift_is_recorded(data: MarketplaceData) -> None:
    drift = {d["name"]: d for d in data.manifest["drift"]}
    assert set(drift) == {"counterfeit_wave", "price_inflation"}
    wave = drift["counterfeit_wave"]
    assert wave["start_day"] == 80 and wave["start"] == "2026-03-22T00:00:00+00:00"
    assert wave["rows_affected"] > 0
    start = pd.Timestamp(wave["start"])
    wave_rows = data.listing_truth["pattern"] == "counterfeit_wave"
    assert (data.listings.loc[wave_rows, "created_at"] >= start).all()
    assert data.listing_truth.loc[wave_rows, "is_violation"].mean() > 0.2


def test_injected_drift_changes_data_after_its_start() -> None:
    base = GeneratorConfig(seed=3, n_accounts=2000, n_listings=20000, include_default_drift=False)
    specs = (
        DriftSpec(kind="covariate", name="gmv_boom", table="accounts", column="gmv_90d", factor=3.0, start_day=50),
        DriftSpec(
            kind="pattern",
            name="toy_wave",
            start_day=60,
            category="toys",
            brand="Nimbus Toys",
            shipping_origin="MX",
            keyword="warehouse clearout",
            risk_type="counterfeit",
            share=0.05,
            logit_shift=3.0,
        ),
    )
    plain = generate_marketplace(base)
    drifted = generate_marketplace(base.model_copy(update={"drift": specs}))
    assert plain.manifest["drift"] == []
    recorded = {d["name"]: d for d in drifted.manifest["drift"]}
    assert recorded["gmv_boom"]["start"] == "2026-02-20T00:00:00+00:00"
    assert recorded["toy_wave"]["start"] == "2026-03-02T00:00:00+00:00"
    assert recorded["toy_wave"]["rows_affected"] == (drifted.listing_truth["pattern"] == "toy_wave").sum() > 0

    # covariate: exactly the rows from the start day are scaled, earlier ones untouched
    after = drifted.accounts["observed_at"] >= START + pd.Timedelta(days=50)
    assert recorded["gmv_boom"]["rows_affected"] == after.sum()
    ratio = drifted.accounts["gmv_90d"] / plain.accounts["gmv_90d"].where(plain.accounts["gmv_90d"] > 0)
    assert np.allclose(ratio[after].dropna(), 3.0, rtol=1e-3)
    assert np.allclose(ratio[~after].dropna(), 1.0)

    # pattern: a segment that did not exist before, with its new keyword and raised risk
    listings, truth = drifted.listings, drifted.listing_truth
    late = listings["created_at"] >= START + pd.Timedelta(days=60)
    segment = (listings["category"] == "toys") & (listings["shipping_origin"] == "MX")
    assert segment[~late].sum() == 0 and segment[late].sum() > 0
    assert (listings.loc[segment, "brand"].dropna() == "Nimbus Toys").all()
    keyword = (listings["title"] + listings["description"]).str.contains("warehouse clearout")
    assert keyword[~late].sum() == 0 and keyword[late].sum() > 0
    assert truth.loc[segment, "true_prob"].mean() > 5 * truth.loc[~segment, "true_prob"].mean()
    assert (truth.loc[truth["pattern"] == "toy_wave", "risk_type"] == "counterfeit").mean() > 0.5


def test_config_validation() -> None:
    config = GeneratorConfig(seed=1, start=datetime(2026, 2, 1))
    assert config.start.tzinfo == UTC
    assert config.n_accounts == 5000 and config.n_listings == 50000 and config.days == 120
    with pytest.raises(ValueError):
        DriftSpec(kind="covariate", name="x", start_day=1, column="title")
    with pytest.raises(ValueError):
        DriftSpec(kind="pattern", name="x", start_day=1, category="weapons")
    with pytest.raises(ValueError):
        GeneratorConfig(seed=1, labels={"delay_min_days": 10, "delay_max_days": 2})
    with pytest.raises(ValueError):
        GeneratorConfig.model_validate({"seed": 1, "unknown_knob": 3})


def test_progress_bar_and_knobs(capsys: pytest.CaptureFixture[str]) -> None:
    config = GeneratorConfig(
        seed=2,
        n_accounts=400,
        n_listings=2000,
        days=30,
        include_default_drift=False,
        rings={"member_share": 0.0},
        labels={"never_confirmed_share": 0.0, "false_confirmation_rate": 0.0},
    )
    data = generate_marketplace(config, progress=True)
    assert "synthetic marketplace" in capsys.readouterr().err
    assert (data.account_truth["ring_id"] == "").all()
    assert (data.listing_truth["label"] == data.listing_truth["is_violation"].astype(int)).all()
    end = START + pd.Timedelta(days=30)
    assert data.listings["created_at"].max() <= end
