"""Retraining from the closed loop: point-in-time cases from the scoring log and decisions, category codes
across vocabularies, gated promotion both ways, alias history and audit, the report.

Traffic is simulated from the small generated marketplace: the champion (copied from `trained_store` into a
fresh registry, so the shared one is never moved) scores the last weeks of listings, reviewers decide the top
cases of each day with the generator's observed labels, and some scores are logged after their decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sqlalchemy.engine import Engine

from features import FeatureEncoder, columns_from_frame, feature_set_for
from loop.report import alias_periods_markdown, alias_periods_table
from loop.retrain import SchemaMismatchError, logged_cases, retrain, train_challenger
from loop.rows import CaseRows, base_cases
from models.artifact import ScorerArtifact
from models.registry import CHALLENGER, CHAMPION, LoadedScorer, alias_version, load_scorer, log_scorer, set_alias
from stores.alias_history import AliasHistory
from stores.audit_log import AuditLog
from stores.decisions import Decision, DecisionStore
from stores.records import ModelAlias, ScoreRecord
from stores.scoring_log import ScoringLogWriter
from tests.conftest import TrainedStore, small_train_config
from training.config import LightGBMConfig, TrainConfig
from training.datasets import load_entities
from training.pipeline import configure_mlflow
from training.split import TimeSplitConfig, time_split
from triage.settings import TriageSettings

pytest_plugins = ("tests.conftest_stores",)

ENTITY = "listing"
LOG_DAYS = 40  # reaches back into the base data's validation window, so decisions replace base rows
REVIEWS_PER_DAY = 25
WINDOW_DAYS = 10
DECISION_DELAY = timedelta(hours=6)
ESCALATION_DELAY = timedelta(hours=3)
LATE_SCORES = 10
FOREIGN_SCHEMA = "foreign-schema"


# -- simulation helpers (also used by tests/test_compare.py) --------------------------------------------------
@dataclass(frozen=True)
class Traffic:
    now: datetime
    decided: pd.DataFrame  # entity_id, scored_at, decided_at, label, score_id (the final decision's score)
    late_score_ids: frozenset[str]
    matrix_by_entity: dict[str, np.ndarray]


def loop_settings(tmp_path: Path, store_url: str) -> TriageSettings:
    return TriageSettings(home=tmp_path / "home", mlflow_tracking_uri=None, store_url=store_url)


def register_champion(source: TrainedStore, settings: TriageSettings) -> LoadedScorer:
    """The trained listing champion, registered as version 1 + alias champion in `settings`' own registry."""
    src = load_scorer(MlflowClient(source.settings.tracking_uri), source.settings.model_name(ENTITY))
    name = settings.model_name(ENTITY)
    configure_mlflow(settings)
    with mlflow.start_run(run_name="champion-copy"):
        info = log_scorer(src.artifact, registered_model_name=name)
    client = MlflowClient(settings.tracking_uri)
    set_alias(client, name, CHAMPION, str(info.registered_model_version))
    return load_scorer(client, name)


def simulate_traffic(
    engine: Engine, spool_dir: Path, champion: ScorerArtifact, dataset: Path, model_name: str, version: str,
    shadow_version: str | None = None,
) -> Traffic:
    fs = feature_set_for(ENTITY)
    data = load_entities(dataset, ENTITY)
    end = data.times.max()
    recent = data.subset((data.times >= end - timedelta(days=LOG_DAYS)).to_numpy())
    batch = champion.score_columns(columns_from_frame(recent.frame, fs))
    scored_at = [t.to_pydatetime() for t in recent.times]
    ids = [str(i) for i in batch.ids]

    def record(i: int, when: datetime, **overrides: object) -> ScoreRecord:
        fields: dict[str, object] = dict(
            scored_at=when, entity_type="listing", entity_id=ids[i], model_name=model_name,
            model_version=version, model_alias=ModelAlias.CHAMPION, served=True,
            probability=float(batch.probability[i]), score=float(batch.score[i]), tier=str(batch.tier[i]),
            expected_loss=float(batch.expected_loss[i]), feature_vector=batch.matrix[i],
            feature_names_hash=champion.schema_hash, request_id=f"req-{i}",
        )
        fields.update(overrides)
        return ScoreRecord(**fields)  # type: ignore[arg-type]

    records = [record(i, scored_at[i]) for i in range(len(ids))]
    if shadow_version is not None:
        # a stand-in challenger: the champion's probabilities with noise (compare_shadow reads only the log)
        rng = np.random.default_rng(5)
        shadow_p = np.clip(batch.probability * np.exp(rng.normal(0, 0.8, len(ids))), 1e-6, 1 - 1e-6)
        shadow_tier = champion.tiers.assign(shadow_p)
        records += [
            record(i, scored_at[i], model_version=shadow_version, model_alias=ModelAlias.CHALLENGER, served=False,
                   probability=float(shadow_p[i]), score=float(shadow_p[i] * 100), tier=str(shadow_tier[i]),
                   expected_loss=float(shadow_p[i] * batch.exposure[i]))
            for i in range(len(ids))
        ]
    # reviewers work each day's queue top down, by expected loss, and confirm the generator's observed label
    assert recent.truth is not None
    queue = pd.DataFrame({"i": range(len(ids)), "day": recent.times.dt.floor("D"), "el": batch.expected_loss})
    top = queue.sort_values(["day", "el"], ascending=[True, False]).groupby("day").head(REVIEWS_PER_DAY)
    decisions: list[Decision] = []
    decided_rows = []
    late: set[str] = set()
    for n, i in enumerate(top["i"].to_numpy()):
        label = int(recent.label[i])
        decided_at = scored_at[i] + DECISION_DELAY
        common = dict(case_id=f"case-{ids[i]}", entity_type=ENTITY, entity_id=ids[i], reviewer_id=f"R{n % 7}",
                      model_name=model_name, model_version=version)
        if n % 15 == 0:  # some cases go to a senior reviewer first: not a label
            decisions.append(Decision(decision_id=f"esc-{ids[i]}", outcome="escalate",
                                      decided_at=scored_at[i] + ESCALATION_DELAY, **common))
        decisions.append(Decision(
            decision_id=f"dec-{ids[i]}", outcome="violation" if label else "no_violation",
            loss_amount=float(recent.truth["loss_if_missed"].iloc[i]) if label else 0.0, decided_at=decided_at,
            risk_type="counterfeit" if label else None, **common,
        ))
        decided_rows.append({"entity_id": ids[i], "scored_at": scored_at[i], "decided_at": decided_at,
                             "label": label, "score_id": records[i].id})
        if n < LATE_SCORES:
            # rescored an hour after the decision: hindsight a point-in-time join must never use. Half carry a
            # foreign schema (retrain would refuse them), half a plausible but different vector.
            foreign = n % 2 == 0
            vector = np.arange(3.0) if foreign else np.where(np.isnan(batch.matrix[i]), 1.0, batch.matrix[i] + 1000)
            late_record = record(i, decided_at + timedelta(hours=1), feature_vector=vector,
                                 feature_names_hash=FOREIGN_SCHEMA if foreign else champion.schema_hash)
            records.append(late_record)
            late.add(late_record.id)
    with ScoringLogWriter(engine, spool_dir) as writer:
        writer.submit(records)
        assert writer.flush(timeout=120)
    store = DecisionStore(engine)
    for decision in decisions:
        store.record(decision)
    now = end.to_pydatetime() + timedelta(days=1)
    return Traffic(now, pd.DataFrame(decided_rows), frozenset(late),
                   {ids[i]: batch.matrix[i] for i in range(len(ids))})


# -- unit: values ↔ rows ------------------------------------------------------------------------------------------
def test_encode_values_reproduces_transform_and_decoding_round_trips(small_dataset: Path) -> None:
    fs = feature_set_for(ENTITY)
    data = load_entities(small_dataset, ENTITY)
    columns = columns_from_frame(data.frame.iloc[:3000], fs)
    encoder = FeatureEncoder(fs).fit(columns, max_categories=5)  # small vocabularies: unseen categories too
    matrix = encoder.transform(columns)
    np.testing.assert_array_equal(encoder.encode_values(encoder.feature_values(columns)), matrix)
    np.testing.assert_array_equal(encoder.encode_values(encoder.decode(matrix, missing="")), matrix)


def test_extended_encoder_keeps_the_champion_codes_and_adds_new_categories(small_dataset: Path) -> None:
    fs = feature_set_for(ENTITY)
    data = load_entities(small_dataset, ENTITY)
    columns = columns_from_frame(data.frame, fs)
    champion = FeatureEncoder(fs).fit(columns, max_categories=3)
    values = champion.feature_values(columns)
    extended = champion.extended(values)
    for name in fs.categorical_features:
        known = champion.vocabularies[name]
        assert extended.vocabularies[name][: len(known)] == known
        assert set(extended.vocabularies[name]) == {v for v in values[name] if v != ""} or len(
            extended.vocabularies[name]) == 256
    # a logged champion row re-encoded with the extended encoder means the same categories
    logged = champion.transform(columns)
    reencoded = extended.encode_values(champion.decode(logged, missing=""))
    known_codes = ~np.isnan(logged)
    np.testing.assert_array_equal(reencoded[known_codes], logged[known_codes])


def test_case_rows_concat_of_empty_parts() -> None:
    fs = feature_set_for(ENTITY)
    empty = CaseRows.empty(fs)
    assert len(CaseRows.concat([empty, empty], fs)) == 0


# -- the loop on both backends ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_logged_cases_are_point_in_time_and_foreign_schemas_are_refused(
    engine: Engine, bare_store_url: str, trained_store: TrainedStore, tmp_path: Path
) -> None:
    settings = loop_settings(tmp_path, bare_store_url)
    champion = register_champion(trained_store, settings)
    traffic = simulate_traffic(engine, tmp_path / "spool", champion.artifact, trained_store.dataset,
                               champion.name, champion.version)
    cases, decided = logged_cases(engine, champion.name, ENTITY, traffic.now, lambda v: champion.artifact.encoder)

    # one case per decided entity; the escalations alone are never labels
    assert len(cases) == len(traffic.decided) and decided.unscored == 0 and decided.escalated == 0
    assert decided.superseded == 0
    facts = cases.facts.set_index("entity_id")
    expected = traffic.decided.set_index("entity_id")
    assert (facts.loc[expected.index, "label"].to_numpy() == expected["label"].to_numpy()).all()
    # the score used is the one logged before the decision, never the later (hindsight) one
    assert not set(cases.facts["score_id"]) & traffic.late_score_ids
    assert (facts.loc[expected.index, "score_id"] == expected["score_id"]).all()
    assert (pd.to_datetime(cases.facts["time"], utc=True) <= pd.to_datetime(cases.facts["decided_at"], utc=True)).all()
    # and its vector is exactly what the champion saw
    rows = champion.artifact.encoder.encode_values(cases.values)
    for j, entity_id in enumerate(cases.facts["entity_id"]):
        np.testing.assert_array_equal(rows[j], traffic.matrix_by_entity[entity_id])

    # a decision whose point-in-time score follows another feature schema: refuse, naming the problem
    foreign = ScoreRecord(
        scored_at=traffic.now - timedelta(hours=2), entity_type="listing", entity_id="L-foreign",
        model_name=champion.name, model_version=champion.version, model_alias=ModelAlias.CHAMPION, served=True,
        probability=0.5, score=50.0, tier="P2", expected_loss=1.0, feature_vector=np.arange(3.0),
        feature_names_hash=FOREIGN_SCHEMA,
    )
    with ScoringLogWriter(engine, tmp_path / "spool2") as writer:
        writer.submit([foreign])
        assert writer.flush(timeout=30)
    DecisionStore(engine).record(Decision(
        decision_id="dec-foreign", case_id="case-foreign", entity_type="listing", entity_id="L-foreign",
        outcome="violation", reviewer_id="R1", decided_at=traffic.now - timedelta(hours=1),
    ))
    with pytest.raises(SchemaMismatchError, match="feature schema"):
        retrain(settings, ENTITY, None, small_train_config(), WINDOW_DAYS, now=traffic.now)


@pytest.mark.slow
def test_retrain_promotes_only_by_the_rule_and_records_every_alias_move(
    engine: Engine, bare_store_url: str, trained_store: TrainedStore, tmp_path: Path
) -> None:
    settings = loop_settings(tmp_path, bare_store_url)
    champion = register_champion(trained_store, settings)
    traffic = simulate_traffic(engine, tmp_path / "spool", champion.artifact, trained_store.dataset,
                               champion.name, champion.version)
    client = MlflowClient(settings.tracking_uri)
    name = champion.name

    # 1. a deliberately weak challenger (one stump) on the logged decisions only: kept as challenger
    weak = TrainConfig(lightgbm=LightGBMConfig(max_rounds=1, num_leaves=2, learning_rate=0.01))
    report = retrain(settings, ENTITY, None, weak, WINDOW_DAYS, now=traffic.now)
    assert [w.name for w in report.windows] == ["recent_decided"]
    recent = report.windows[0]
    assert recent.rows > 0 and 0 < recent.positives < recent.rows
    assert not report.promoted and report.challenger_version == "2"
    assert alias_version(client, name, CHAMPION) == "1" and alias_version(client, name, CHALLENGER) == "2"
    assert report.data["log.escalated_excluded"] == 0

    # 2. a normal challenger with the base data, margin +1: cannot win, whatever its metrics
    strict = small_train_config().model_copy(update={"promotion_margin": 1.0})
    report2 = retrain(settings, ENTITY, trained_store.dataset, strict, WINDOW_DAYS, now=traffic.now)
    assert [w.name for w in report2.windows] == ["recent_decided", "base_test"]
    assert report2.windows[1].oracle is not None
    assert not report2.promoted and report2.challenger_version == "3"
    assert alias_version(client, name, CHAMPION) == "1" and alias_version(client, name, CHALLENGER) == "3"
    # base rows of entities that were decided were replaced by the decision; decided entities in the base test
    # window never train the challenger
    assert report2.data["base.replaced_by_decision"] > 0
    assert report2.data["log.held_out_in_base_test"] > 0

    # 3. margin −1 (test-only: the config forbids negative margins): any challenger wins on every window
    lenient = small_train_config().model_copy(update={"promotion_margin": -1.0})
    report3 = retrain(settings, ENTITY, trained_store.dataset, lenient, WINDOW_DAYS, now=traffic.now)
    assert report3.promoted and report3.challenger_version == "4"
    assert alias_version(client, name, CHAMPION) == "4" and alias_version(client, name, CHALLENGER) is None

    # the rule, on the numbers the reports carry
    for r in (report, report2, report3):
        metric = r.promotion_metric
        wins = [w.challenger[metric] > w.champion[metric] + r.promotion_margin for w in r.windows]
        assert r.promoted == all(wins)
        table = r.table()
        assert {"champion", "challenger", "difference", "better"} <= set(table.columns)
        for w in r.windows:
            assert (w.name, metric) in table.index
        markdown = r.to_markdown()
        assert "| metric | champion | challenger | difference | better |" in markdown
        assert ("promoted to `champion`" in markdown) == r.promoted

    # the alias history answers "which version was champion when"; MLflow cannot
    history = AliasHistory(engine)
    changes = history.history(name)
    moves = [(c.alias, c.version) for c in changes]
    assert moves == [(CHAMPION, "1"), (CHALLENGER, "2"), (CHALLENGER, "3"), (CHAMPION, "4"), (CHALLENGER, None)]
    assert all(c.set_by == "retrain" for c in changes)
    reconciled, promoted_move = changes[0], changes[3]
    assert reconciled.reason.startswith("reconciled")
    assert "pr_auc" in promoted_move.reason and report3.run_id in promoted_move.reason
    before_promotion = promoted_move.set_at - timedelta(microseconds=1)
    assert history.champion_at(name, before_promotion) == "1"
    assert history.champion_at(name, promoted_move.set_at) == "4"
    assert history.version_at(name, CHALLENGER, before_promotion) == "3"
    assert history.version_at(name, CHALLENGER, promoted_move.set_at) is None
    assert history.champion_at(name, reconciled.set_at - timedelta(microseconds=1)) is None
    periods = alias_periods_table(history.periods(name))
    assert list(periods.loc[periods["alias"] == CHAMPION, "version"]) == ["1", "4"]
    assert "Alias history" in alias_periods_markdown(name, history.periods(name))

    # the audit log has one entry per move, with the metric values
    audit = AuditLog(engine).query(actor="retrain", newest_first=False)
    assert [(e.action, e.detail["alias"], e.detail["to"]) for e in audit] == [
        ("alias_reconciled", CHAMPION, "1"), ("alias_set", CHALLENGER, "2"), ("alias_set", CHALLENGER, "3"),
        ("alias_set", CHAMPION, "4"), ("alias_removed", CHALLENGER, None),
    ]
    assert audit[3].detail["windows"]["recent_decided"]["challenger"] is not None

    # MLflow: a parent run with both models side by side, the table and the decision; the fit as a child run
    run = client.get_run(report3.run_id)
    metric = report3.promotion_metric
    for window in ("recent_decided", "base_test"):
        for role in ("champion", "challenger"):
            assert f"{window}.{role}.{metric}" in run.data.metrics
    assert run.data.tags["promoted"] == "True" and run.data.tags["registered_version"] == "4"
    assert run.data.params["champion_version"] == "1"
    artifacts = {a.path for a in client.list_artifacts(report3.run_id, "comparison")}
    assert {"comparison/retrain_report.md", "comparison/comparison.csv"} <= artifacts
    children = client.search_runs([run.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{report3.run_id}'")
    assert len(children) == 1


def test_a_retrained_account_challenger_keeps_its_link_graph(trained_store: TrainedStore) -> None:
    """The challenger's rows carry graph features, so the challenger must ship the snapshot they came from:
    otherwise those features would be missing when it serves (train/serve skew)."""
    champion = load_scorer(MlflowClient(trained_store.settings.tracking_uri), trained_store.account.model_name)
    assert champion.artifact.graph is not None
    config = small_train_config()
    data = load_entities(trained_store.dataset, "account")
    split = time_split(data, TimeSplitConfig(config.split.test_days, config.split.valid_days, config.split.gap_days))
    rows = base_cases(data, split)
    challenger = train_challenger(champion.artifact, rows.role("train"), rows.role("valid"), config,
                                  config.capacity("account"), graph=data.graph)
    assert challenger.graph is data.graph
    test = data.subset(split.test)
    matrix = challenger.model_matrix(columns_from_frame(test.frame, test.feature_set))
    j = challenger.encoder.feature_names.index("group_size")
    assert np.isfinite(matrix[:, j]).all() and (matrix[:, j] > 1).any()  # computed from the graph, not missing
    # without an explicit snapshot, the champion's travels on
    again = train_challenger(champion.artifact, rows.role("train"), rows.role("valid"), config,
                             config.capacity("account"))
    assert again.graph is champion.artifact.graph
