"""Monitor findings on a marketplace with known injected drift: the drifted features alert, undrifted ones
do not, reviewer precision and SLA figures agree with the cases, and a starved queue raises an SLA alert."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.artifact import ScorerArtifact
from policy.config import CapacityConfig, QueuePolicyConfig
from reports.config import DriftThresholds, MonitorConfig
from reports.drift import feature_drift
from reports.monitor import SCORE_GAUGE_KEY, drift_gauges, monitor_from_dataset, write_monitor_report
from reports.outcomes import precision_by_tier, precision_by_week, sla_table

DRIFT_DAY = 60
PATTERN_CATEGORY, PATTERN_ORIGIN = "toys", "TR"


@dataclass(frozen=True)
class DriftedMarket:
    dataset: Path
    artifact: ScorerArtifact


def build_drifted_market(base: Path) -> DriftedMarket:
    """20k listings over 90 days; from day 60: discounts ×2, prices ×1.6 and a counterfeit wave of toys
    shipped from TR with a new keyword. The scorer is trained before day 60 (test window = the drift)."""
    from synthetic.config import DriftSpec, GeneratorConfig
    from synthetic.generator import generate_marketplace
    from synthetic.io import write_dataset
    from training.config import LightGBMConfig, SplitConfig, TrainConfig
    from training.datasets import load_entities
    from training.split import TimeSplitConfig, time_split
    from training.trainer import fit_scorer

    dataset, artifact_dir = base / "data", base / "artifact"
    if not (artifact_dir / "scorer.json").is_file():  # built once per session, shared by both report test files
        # missing values and adapting adversaries off: these reports' tests isolate what an injected drift
        # does (the generator's own tests cover the rest)
        config = GeneratorConfig(
            seed=5, n_accounts=4000, n_listings=20_000, days=90, include_default_drift=False,
            missingness={"enabled": False}, adversary={"enabled": False},
            drift=(
                DriftSpec(kind="covariate", name="discount_push", start_day=DRIFT_DAY, column="discount_pct",
                          factor=2.0),
                DriftSpec(kind="covariate", name="price_jump", start_day=DRIFT_DAY, column="price", factor=1.6),
                DriftSpec(kind="pattern", name="toys_tr_wave", start_day=DRIFT_DAY, category=PATTERN_CATEGORY,
                          shipping_origin=PATTERN_ORIGIN, keyword="lab sealed", share=0.05, logit_shift=2.5),
            ),
        )
        write_dataset(generate_marketplace(config), dataset)
        train = TrainConfig(lightgbm=LightGBMConfig(max_rounds=150, num_leaves=15, learning_rate=0.1),
                            split=SplitConfig(test_days=30, valid_days=14, gap_days=7))
        data = load_entities(dataset, "listing")
        split = time_split(data, TimeSplitConfig(30, 14, 7))
        artifact, _ = fit_scorer(data, split, train)
        artifact.save(artifact_dir)
    return DriftedMarket(dataset, ScorerArtifact.load(artifact_dir))


@pytest.fixture(scope="session")
def drifted_market(tmp_path_factory: pytest.TempPathFactory) -> DriftedMarket:
    return build_drifted_market(tmp_path_factory.getbasetemp() / "reports-drifted-market")


# -- fast unit checks ---------------------------------------------------------------------------------


def test_psi_is_zero_for_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    th = DriftThresholds()
    same = feature_drift("x", rng.normal(size=20_000), rng.normal(size=20_000), th)
    shifted = feature_drift("x", rng.normal(size=20_000), rng.normal(1.0, 1.0, size=20_000), th)
    assert same.psi < 0.01 and same.level == "ok"
    assert shifted.psi > th.psi_alert and shifted.level == "alert"
    assert shifted.ks_pvalue is not None and shifted.ks_pvalue < 1e-6


def test_psi_counts_missing_and_new_categories() -> None:
    th = DriftThresholds()
    reference = np.array([0.0] * 500 + [1.0] * 500)
    # a new category (code 2) and many missing values: both are drift
    current = np.array([0.0] * 300 + [1.0] * 300 + [2.0] * 200 + [np.nan] * 200)
    drift = feature_drift("c", reference, current, th, kind="categorical", decode=lambda c: f"cat{int(c)}")
    labels = {b.label: b for b in drift.bins}
    assert labels["cat2"].reference == 0 and labels["cat2"].current == pytest.approx(0.2)
    assert labels["missing"].current == pytest.approx(0.2)
    assert drift.level == "alert"


def test_precision_and_sla_from_a_review_frame() -> None:
    t0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
    hours = timedelta(hours=1)
    reviews = pd.DataFrame({
        "case_id": ["a", "b", "c", "d", "e", "f"],
        "tier": ["P0", "P0", "P1", "P1", "P1", "P0"],
        "scored_at": [t0] * 6,
        "decided_at": [t0 + 2 * hours, t0 + 6 * hours, t0 + 10 * hours, t0 + 30 * hours, t0 + 8 * 24 * hours, pd.NaT],
        "outcome": ["violation", "no_violation", "violation", "violation", "escalate", None],
    })
    reviews["decided_at"] = pd.to_datetime(reviews["decided_at"], utc=True)
    by_tier = precision_by_tier(reviews)
    assert by_tier.loc["P0", "precision"] == pytest.approx(0.5)  # escalations are not in the denominator
    assert by_tier.loc["P1", "decided"] == 2 and by_tier.loc["P1", "precision"] == 1.0
    by_week = precision_by_week(reviews)
    # the escalation decided in the next week is not a verdict, so that week has no precision row
    assert set(by_week["week"].dt.date.astype(str)) == {"2026-03-02"}
    sla = sla_table(reviews, QueuePolicyConfig(), as_of=t0 + 10 * hours)
    # P0 (4 h): a in time, b late, f open 10 h > 4 h: overdue
    assert sla.loc["P0", "decided_in_sla"] == 1 and sla.loc["P0", "open_overdue"] == 1
    assert sla.loc["P0", "attainment"] == pytest.approx(1 / 3)
    # P1 (24 h): c in time, d and e late
    assert sla.loc["P1", "attainment"] == pytest.approx(1 / 3)


# -- findings on the drifted marketplace --------------------------------------------------------------


@pytest.mark.slow
def test_monitor_flags_injected_covariate_drift_and_not_stable_features(
    drifted_market: DriftedMarket, tmp_path: Path
) -> None:
    report = monitor_from_dataset(drifted_market.dataset, drifted_market.artifact)
    alert = report.config.drift.psi_alert
    # injected: discount ×2 and price ×1.6 from day 60 (reference price is not scaled, so the ratio moves)
    for feature in ("discount_pct", "price_to_reference"):
        assert report.drift(feature).psi > alert, report.drift_table()
        assert report.drift(feature).level == "alert"
    # the raw price level spans categories (×10 between them), so ×1.6 is a moderate shift there
    assert report.drift("log_price").level in ("warn", "alert")
    # not touched by any injection
    for feature in ("prohibited_terms", "title_uppercase_share", "description_length", "seller_verification"):
        assert report.drift(feature).psi < report.config.drift.psi_warn, report.drift_table()
    print(report.drift_table()[["feature", "psi", "level"]].to_string())
    flagged = {a.subject for a in report.alerts if a.kind == "feature_drift" and a.level == "alert"}
    assert {"discount_pct", "price_to_reference"} <= flagged
    assert "prohibited_terms" not in flagged

    gauges = drift_gauges(report)
    assert set(report.current.feature_names) | {SCORE_GAUGE_KEY} == set(gauges)
    assert gauges["discount_pct"] == pytest.approx(report.drift("discount_pct").psi)

    # precision by tier is the confirmed share among decided cases, and higher tiers are more precise
    tiers = report.precision_tier
    assert tiers is not None
    precision, decided = tiers["precision"].to_dict(), tiers["decided"].to_dict()
    assert decided["all"] > 100
    assert precision["P0"] > precision["P2"]
    base_rate = float(np.mean(pd.read_parquet(drifted_market.dataset / "listing_truth.parquet")["label"]))
    assert precision["all"] > 3 * base_rate
    print(f"precision by tier {precision} on {decided} decided; base rate {base_rate:.1%}")

    out = write_monitor_report(report, tmp_path / "monitor.html", figures_dir=tmp_path / "png")
    html = out.html.read_text()
    assert html.count("data:image/png;base64,") == 4
    assert "<script" not in html and "src='http" not in html and "discount_pct" in html
    assert set(out.figures) == {"psi", "score_distribution", "precision_by_week", "sla_attainment"}


@pytest.mark.slow
def test_starved_queue_raises_sla_alert(drifted_market: DriftedMarket) -> None:
    # one investigator at 10 % productive time: about 8 listing reviews a day against ~20 queued cases
    starved = CapacityConfig(investigators=1, productive_share=0.1)
    report = monitor_from_dataset(drifted_market.dataset, drifted_market.artifact, capacity=starved,
                                  config=MonitorConfig())
    assert report.sla is not None
    assert report.sla["open_overdue"].sum() > 0
    sla_alerts = [a for a in report.alerts if a.kind == "sla"]
    print([a.message for a in sla_alerts])
    assert sla_alerts and any(a.level == "alert" for a in sla_alerts)
    assert all(a.value < report.config.outcomes.sla_warn for a in sla_alerts)


@pytest.mark.slow
def test_monitor_report_is_logged_to_mlflow(drifted_market: DriftedMarket, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    report = monitor_from_dataset(drifted_market.dataset, drifted_market.artifact)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # artifacts under tmp_path, not in ./mlruns of the working directory
    MlflowClient(uri).create_experiment("triage-reports", artifact_location=(tmp_path / "artifacts").as_uri())
    out = write_monitor_report(report, tmp_path / "monitor.html", tracking_uri=uri)
    assert out.mlflow_run_id is not None
    client = MlflowClient(uri)
    assert [f.path for f in client.list_artifacts(out.mlflow_run_id, "reports")] == ["reports/monitor.html"]
    metrics = client.get_run(out.mlflow_run_id).data.metrics
    assert metrics["psi.discount_pct"] == pytest.approx(report.drift("discount_pct").psi)
