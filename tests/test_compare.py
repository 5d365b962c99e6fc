"""Shadow comparison: champion (served) vs challenger (shadow) scores on the same decided traffic, point in time;
and the closed loop's shared rules (labels from outcomes, one case per entity, the promotion rule)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.metrics import average_precision_score
from sqlalchemy.engine import Engine

from loop.labels import decided_cases, outcome_label
from loop.shadow import compare_shadow
from models.registry import load_scorer
from stores.decisions import DecisionWithScore, Outcome, StoredDecision
from stores.records import ModelAlias, TimeWindow
from stores.scoring_log import ScoringLogReader
from tests.conftest import TrainedStore
from tests.conftest_stores import BASE_TIME, make_score
from tests.test_retrain import ENTITY, loop_settings, simulate_traffic
from training.promotion import challenger_wins, metric_table

pytest_plugins = ("tests.conftest_stores",)


def stored(decision_id: str, entity_id: str, outcome: str, hours: float) -> StoredDecision:
    return StoredDecision(
        decision_id=decision_id, case_id=f"case-{entity_id}", entity_type="listing", entity_id=entity_id,
        outcome=outcome, reviewer_id="R1", decided_at=BASE_TIME + timedelta(hours=hours),
        received_at=BASE_TIME + timedelta(hours=hours),
    )


def test_outcome_labels_and_one_final_decision_per_entity() -> None:
    assert outcome_label(Outcome.VIOLATION) == 1 and outcome_label(Outcome.NO_VIOLATION) == 0
    assert outcome_label(Outcome.ESCALATE) is None
    score = make_score("L-1")
    rows = [
        DecisionWithScore(stored("d1", "L-1", "escalate", 1), score),
        DecisionWithScore(stored("d2", "L-1", "no_violation", 2), score),
        DecisionWithScore(stored("d3", "L-1", "violation", 3), score),  # the later final decision wins
        DecisionWithScore(stored("d4", "L-2", "escalate", 1), make_score("L-2")),  # no final answer yet
        DecisionWithScore(stored("d5", "L-3", "violation", 1), None),  # never scored before the decision
    ]
    result = decided_cases(rows, "listing")
    assert [(c.decision_id, c.label) for c in result.cases] == [("d3", 1)]
    assert (result.escalated, result.superseded, result.unscored) == (1, 1, 1)
    assert decided_cases(rows, "account").cases == []


def test_promotion_rule_respects_the_direction_of_each_metric() -> None:
    assert challenger_wins(0.50, 0.40, "pr_auc", 0.05)
    assert not challenger_wins(0.44, 0.40, "pr_auc", 0.05)
    assert challenger_wins(0.02, 0.05, "brier", 0.0) and not challenger_wins(0.05, 0.02, "brier", 0.0)
    assert not challenger_wins(float("nan"), 0.4, "pr_auc", -1.0)
    table = metric_table({"pr_auc": 0.4, "brier": 0.05, "days": 3.0}, {"pr_auc": 0.5, "brier": 0.06, "days": 3.0})
    assert list(table.index) == ["pr_auc", "brier"]
    assert list(table["better"]) == ["challenger", "champion"]


@pytest.mark.slow
def test_compare_shadow_scores_both_models_on_decided_shadow_traffic(
    engine: Engine, bare_store_url: str, trained_store: TrainedStore, tmp_path: Path
) -> None:
    settings = loop_settings(tmp_path, bare_store_url)
    name = settings.model_name(ENTITY)
    champion = load_scorer(MlflowClient(trained_store.settings.tracking_uri), name)
    traffic = simulate_traffic(engine, tmp_path / "spool", champion.artifact, trained_store.dataset, name, "1",
                               shadow_version="2")
    window = TimeWindow(traffic.now - timedelta(days=15), traffic.now - timedelta(days=1))

    report = compare_shadow(settings, ENTITY, window, now=traffic.now)

    assert report.champion_versions == ("1",) and report.challenger_versions == ("2",)
    in_window = traffic.decided[(traffic.decided["scored_at"] >= window.start)
                                & (traffic.decided["scored_at"] < window.end)]
    # every decided entity scored in the window was shadow-scored too; the hindsight scores logged after a
    # decision are in the log but never the score a decision is joined to
    assert report.counts["decided_pairs"] == len(in_window)
    assert report.counts["decided_positives"] == int(in_window["label"].sum())
    assert report.counts["paired_entities"] >= report.counts["decided_pairs"]
    for metrics in (report.champion, report.challenger):
        for key in ("roc_auc", "pr_auc", "precision_at_k", "recall_at_k", "loss_captured_at_k", "brier"):
            assert np.isfinite(metrics[key]), key
            assert 0.0 <= metrics[key] <= 1.0
    # the champion's numbers are those of its served, point-in-time scores
    served = {r.id: r for r in ScoringLogReader(engine).scores_in_window(window, model_alias=ModelAlias.CHAMPION)}
    probability = [served[s].probability for s in in_window.sort_values(["decided_at"])["score_id"]]
    labels = in_window.sort_values(["decided_at"])["label"].to_numpy()
    assert report.champion["pr_auc"] == pytest.approx(average_precision_score(labels, probability))
    # the noisy stand-in challenger agrees with the champion, but not perfectly
    assert 0.0 < report.agreement["decided_rank_correlation"] < 1.0
    assert 0.0 < report.agreement["all_tier_agreement"] <= 1.0
    assert report.agreement["all_pairs"] == report.counts["paired_entities"]

    table = report.table()
    assert {"roc_auc", "pr_auc", "precision_at_k", "loss_captured_at_k"} <= set(table.index)
    markdown = report.to_markdown()
    assert "| metric | champion | challenger | difference | better |" in markdown and "decided_pairs" in markdown

    assert report.run_id is not None
    run = MlflowClient(settings.tracking_uri).get_run(report.run_id)
    assert "champion_pr_auc" in run.data.metrics and "challenger_pr_auc" in run.data.metrics
    assert run.data.metrics["count_decided_pairs"] == len(in_window)
    artifacts = {a.path for a in MlflowClient(settings.tracking_uri).list_artifacts(report.run_id, "comparison")}
    assert "comparison/comparison.md" in artifacts


def test_compare_shadow_without_shadow_traffic_says_so(engine: Engine, bare_store_url: str, tmp_path: Path) -> None:
    settings = loop_settings(tmp_path, bare_store_url)
    report = compare_shadow(settings, ENTITY, TimeWindow(BASE_TIME, BASE_TIME + timedelta(days=1)),
                            log_to_mlflow=False, now=BASE_TIME + timedelta(days=2))
    assert report.counts["decided_pairs"] == 0 and report.champion == {} and report.run_id is None
    assert "no decided shadow traffic" in report.to_markdown()
