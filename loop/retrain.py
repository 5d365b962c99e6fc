"""`triage retrain`: close the loop. Train a challenger on what reviewers decided (the feature vectors as they
were scored, point in time, `loop.rows`) plus the base data set, compare it with the champion on the same
held-out recent window, and move `champion` only when the challenger wins by the configured metric and margin
on every window that could be evaluated (both classes present); otherwise it becomes `challenger`, so the
service can shadow it (`loop.shadow`). The store and MLflow are touched only here, at the edges: `retrain`
reads the decisions and scores, and writes the run, the model version and the alias moves.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sqlalchemy.engine import Engine

from features import FeatureEncoder, feature_set_for
from features.graph import GraphSnapshot
from loop.labels import DecidedCases, decided_cases
from loop.metrics import scored_metrics
from loop.report import finite, markdown_table
from loop.rows import CaseRows, SchemaMismatchError, assign_roles, base_cases, logged_rows
from models.artifact import ScorerArtifact
from models.registry import (
    CHALLENGER,
    CHAMPION,
    LoadedScorer,
    alias_version,
    load_scorer,
    log_scorer,
    move_alias,
    record_alias_move,
)
from stores.alias_history import AliasChange, AliasHistory
from stores.decisions import DecisionStore
from stores.engine import make_engine
from stores.migrate import upgrade
from stores.records import TimeWindow, require_aware_utc, utc_now
from training.config import TrainConfig
from training.datasets import LabelledEntities, load_entities
from training.evaluation import evaluate_window
from training.pipeline import configure_mlflow, data_fingerprint
from training.promotion import COMPARED_METRICS, challenger_wins, metric_table
from training.split import TimeSplit, TimeSplitConfig, time_split
from training.trainer import assemble_scorer, fit_booster
from triage.settings import TriageSettings

__all__ = ["RetrainReport", "SchemaMismatchError", "WindowComparison", "logged_cases", "retrain", "train_challenger"]

ACTOR = "retrain"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def logged_cases(
    engine: Engine, model_name: str, entity: str, until: datetime,
    encoder_for_version: Callable[[str], FeatureEncoder],
) -> tuple[CaseRows, DecidedCases]:
    """Final decisions before `until` with their point-in-time served scores, as model rows (reads the store,
    then `loop.rows.logged_rows`)."""
    rows = DecisionStore(engine).decisions_with_scores(TimeWindow(EPOCH, until), model_name=model_name, served=True)
    decided = decided_cases(rows, entity)
    return logged_rows(decided, feature_set_for(entity), model_name, encoder_for_version), decided


# -- training ---------------------------------------------------------------------------------------------------
def train_challenger(
    champion: ScorerArtifact, train: CaseRows, valid: CaseRows, config: TrainConfig, k: int, progress: bool = False,
    graph: GraphSnapshot | None = None,
) -> ScorerArtifact:
    """`graph`: the link-graph snapshot the challenger's rows were enriched with (default: the champion's);
    it must travel with the challenger, or its graph features would be missing when it serves."""
    fs = champion.feature_set
    for name, part in (("training", train), ("validation", valid)):
        if len(np.unique(part.label)) < 2:
            raise ValueError(
                f"the challenger's {name} rows ({len(part)} rows, {int(part.label.sum())} positives) hold one class "
                "only: give base data (--data), decide more cases, or shorten --window-days / split.valid_days"
            )
    encoder = champion.encoder.extended(CaseRows.concat([train, valid], fs).values)
    booster, margin_valid = fit_booster(encoder.encode_values(train.values), train.label,
                                        encoder.encode_values(valid.values), valid.label, fs, config.lightgbm,
                                        f"retrain {fs.entity}", progress)
    return assemble_scorer(
        booster, encoder, margin_valid, valid.label, valid.days, config,
        graph=champion.graph if graph is None else graph,
        metadata={"trained_by": ACTOR, "base_vocabulary": champion.schema_hash},
    )


# -- comparison -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowComparison:
    name: str
    description: str
    rows: int
    positives: int
    champion: dict[str, float]
    challenger: dict[str, float]
    oracle: dict[str, float] | None = None

    def table(self) -> pd.DataFrame:
        return metric_table(self.champion, self.challenger)


def compare_on_cases(name: str, description: str, cases: CaseRows, models: Mapping[str, ScorerArtifact],
                     k: int) -> WindowComparison:
    """Each model scores the same rows, encoded with its own vocabulary (as serving would have)."""
    metrics = {}
    for role, artifact in models.items():
        probability = artifact.predict_proba(artifact.encoder.encode_values(cases.values))
        exposure = cases.facts["exposure"].to_numpy(dtype=np.float64)
        metrics[role] = scored_metrics(cases.days, cases.label, cases.facts["loss"].to_numpy(dtype=np.float64),
                                       probability, probability * exposure, k)
    return WindowComparison(name, description, len(cases), int(cases.label.sum()), metrics["champion"],
                            metrics["challenger"])


# -- the report -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetrainReport:
    entity: str
    model_name: str
    run_id: str
    champion_version: str
    challenger_version: str
    promoted: bool
    decision: str
    promotion_metric: str
    promotion_margin: float
    windows: tuple[WindowComparison, ...]
    data: dict[str, int]
    alias_moves: tuple[AliasChange, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def table(self) -> pd.DataFrame:
        """Challenger vs champion per metric, one block per comparison window."""
        frames = {w.name: w.table() for w in self.windows}
        return pd.concat(frames, names=["window", "metric"]) if frames else metric_table({}, {})

    def to_markdown(self) -> str:
        verdict = "promoted to `champion`" if self.promoted else "registered as `challenger` (champion kept)"
        lines = [
            f"## Retrain {self.entity}: {self.model_name} version {self.challenger_version} {verdict}",
            "",
            f"Champion before: version {self.champion_version}. Rule: `{self.promotion_metric}` better by more than "
            f"{self.promotion_margin:g} on every window. {self.decision}",
        ]
        for w in self.windows:
            lines += ["", f"### {w.name}: {w.description} ({w.rows} cases, {w.positives} positive)", "",
                      markdown_table(w.table())]
        lines += ["", "### Data", "", markdown_table(pd.DataFrame({"rows": self.data}).rename_axis("part"), "{:.0f}")]
        if self.alias_moves:
            lines += ["", "### Alias moves", ""] + [
                f"- `{m.alias}` → {m.version or '(removed)'} at {m.set_at.isoformat()}: {m.reason}"
                for m in self.alias_moves
            ]
        lines += ["", *(f"- {note}" for note in self.notes)] if self.notes else []
        return "\n".join(lines) + "\n"


# -- alias moves --------------------------------------------------------------------------------------------------
def _move_aliases(
    client: MlflowClient, engine: Engine, model_name: str, version: str, promoted: bool, reason: str,
    detail: Mapping[str, Any],
) -> list[AliasChange]:
    """Point the aliases as decided, each move recorded in the alias history and the audit log."""
    history = AliasHistory(engine)
    moves: list[AliasChange] = []
    before = {alias: alias_version(client, model_name, alias) for alias in (CHAMPION, CHALLENGER)}
    # a move made outside this history (the MLflow UI, another tool) would make the history answer wrongly from
    # here on: record what the registry says now, before moving anything
    now = utc_now()
    for alias, current in before.items():
        if current is not None and history.version_at(model_name, alias, now) != current:
            moves.append(record_alias_move(
                engine, model_name, alias, current, before=current, set_by=ACTOR, action="alias_reconciled",
                reason=f"reconciled: the registry had {alias}={current}, set outside the alias history (when is "
                       "unknown; at the latest now)", detail=detail, at=now))
    # one instant for the whole decision, so no time shows both the new champion and the superseded challenger
    moved_at = utc_now()
    if promoted:
        moves.append(move_alias(client, engine, model_name, CHAMPION, version, set_by=ACTOR, reason=reason,
                                detail=detail, at=moved_at)[1])
        if before[CHALLENGER] is not None and before[CHALLENGER] != version:
            # the old challenger lost to the champion this version just beat: shadowing it has no purpose left
            moves.append(move_alias(client, engine, model_name, CHALLENGER, None, set_by=ACTOR,
                                    reason=f"superseded: version {version} was promoted to {CHAMPION}",
                                    detail=detail, at=moved_at)[1])
    else:
        moves.append(move_alias(client, engine, model_name, CHALLENGER, version, set_by=ACTOR, reason=reason,
                                detail=detail, at=moved_at)[1])
    return moves


# -- the job ------------------------------------------------------------------------------------------------------
def _load_base(base_data_dir: Path, entity: str, config: TrainConfig) -> tuple[LabelledEntities, TimeSplit]:
    data = load_entities(base_data_dir, entity)
    split_cfg = config.split
    return data, time_split(data, TimeSplitConfig(split_cfg.test_days, split_cfg.valid_days, split_cfg.gap_days))


def retrain(
    settings: TriageSettings,
    entity: str,
    base_data_dir: Path | None,
    config: TrainConfig,
    window_days: int,
    now: datetime | None = None,
    progress: bool = False,
) -> RetrainReport:
    """Train a challenger on decided traffic (+ base data), compare with the champion, promote only if it wins.

    Raises `SchemaMismatchError` when logged vectors cannot be combined with today's features, `ValueError` when
    there is nothing to compare on or a training part holds one class only, and the registry's
    `ModelNotFoundError` when there is no champion yet (run `triage train` first).
    """
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    if config.promotion_metric not in COMPARED_METRICS:
        raise ValueError(f"promotion_metric must be one of {COMPARED_METRICS}, got {config.promotion_metric!r}")
    now = require_aware_utc(now if now is not None else utc_now(), "now")
    fs = feature_set_for(entity)
    model_name = settings.model_name(entity)
    k = config.capacity(entity)
    metric, margin = config.promotion_metric, config.promotion_margin
    client = configure_mlflow(settings)
    champion = load_scorer(client, model_name, alias=CHAMPION)
    encoders: dict[str, FeatureEncoder] = {champion.version: champion.artifact.encoder}

    def encoder_for(version: str) -> FeatureEncoder:
        if version not in encoders:
            encoders[version] = load_scorer(client, model_name, version=version).artifact.encoder
        return encoders[version]

    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        with mlflow.start_run(run_name=f"retrain-{entity}") as run:
            mlflow.set_tags({"entity": entity, "job": "retrain", "champion_before": champion.version})
            logged, decided = logged_cases(engine, model_name, entity, now, encoder_for)
            base_data, split = _load_base(base_data_dir, entity, config) if base_data_dir is not None else (None, None)
            base = (base_cases(base_data, split, champion.artifact.encoder.typical)
                    if base_data is not None and split is not None else None)
            recent_start = now - timedelta(days=window_days)
            assign_roles(logged, base, recent_start, config.split.valid_days)
            parts = [logged] if base is None else [logged, base]
            rows = CaseRows.concat(parts, fs)
            train, valid, recent = rows.role("train"), rows.role("valid"), rows.role("recent")
            if len(np.unique(recent.label)) < 2 and base is None:
                raise ValueError(
                    f"the recent window ({window_days} days before {now.isoformat()}) has {len(recent)} decided "
                    f"cases with {int(recent.label.sum())} positives: nothing to compare the models on; widen "
                    "--window-days or give base data (--data)"
                )
            data_counts = _data_counts(rows, decided)
            mlflow.log_params({
                "entity": entity, "window_days": window_days, "now": now.isoformat(),
                "recent_start": recent_start.isoformat(), "base_data": str(base_data_dir or "none"),
                "promotion_metric": metric, "promotion_margin": margin, "review_capacity_per_day": k,
                "champion_version": champion.version, "champion_schema": champion.artifact.schema_hash,
                **({"base_data_fingerprint": data_fingerprint(base_data)} if base_data is not None else {}),
                **{f"split.{k_}": v for k_, v in config.split.model_dump().items()},
                **{f"rows.{k_}": v for k_, v in data_counts.items()},
            })
            with mlflow.start_run(run_name=f"challenger-{entity}", nested=True):
                mlflow.set_tags({"entity": entity, "job": "retrain-fit"})
                mlflow.log_params({f"lgbm.{k_}": v for k_, v in config.lightgbm.model_dump().items()})
                # the base data's snapshot as of its cutoff: the same label visibility the champion was built with
                graph = (base_data.graph.known_by(split.cutoff.timestamp())
                         if base_data is not None and split is not None and base_data.graph is not None else None)
                challenger = train_challenger(champion.artifact, train, valid, config, k, progress, graph=graph)
                windows, notes = _compare(champion, challenger, recent, window_days, base_data, split, k)
                wins = {w.name: challenger_wins(w.challenger[metric], w.champion[metric], metric, margin)
                        for w in windows}
                for w in windows:
                    mlflow.log_metrics(finite({f"{w.name}_{k_}": v for k_, v in w.challenger.items()}))
                challenger.metadata.update(
                    run_id=run.info.run_id, windows={w.name: w.challenger for w in windows},
                    champion_before=champion.version, decision_thresholds=challenger.tiers.to_dict(),
                )
                info = log_scorer(challenger, registered_model_name=model_name)
            version = str(info.registered_model_version)
            for w in windows:
                for role, values in (("champion", w.champion), ("challenger", w.challenger)):
                    mlflow.log_metrics(finite({f"{w.name}.{role}.{k_}": v for k_, v in values.items()}))
                if w.oracle is not None:
                    mlflow.log_metrics(finite({f"{w.name}.oracle.{k_}": v for k_, v in w.oracle.items()}))
            promoted = all(wins.values())
            champion_now = alias_version(client, model_name, CHAMPION)
            if promoted and champion_now != champion.version:
                promoted = False
                notes.append(f"the champion moved to version {champion_now} during the retrain: not promoting over a "
                             "model this run did not compare against")
            decision = _decision_text(windows, metric, margin, promoted)
            detail = {"run_id": run.info.run_id, "metric": metric, "margin": margin,
                      "champion_before": champion.version, "windows": {w.name: {"champion": _clean(w.champion[metric]),
                                           "challenger": _clean(w.challenger[metric])} for w in windows}}
            moves = _move_aliases(client, engine, model_name, version, promoted,
                                  f"retrain run {run.info.run_id}: {decision}", detail)
            mlflow.set_tags({"registered_version": version, "promoted": str(promoted), "decision": decision[:5000]})
            report = RetrainReport(
                entity=entity, model_name=model_name, run_id=run.info.run_id, champion_version=champion.version,
                challenger_version=version, promoted=promoted, decision=decision, promotion_metric=metric,
                promotion_margin=margin, windows=tuple(windows), data=data_counts, alias_moves=tuple(moves),
                notes=tuple(notes),
            )
            _log_report(report)
    finally:
        engine.dispose()
    return report


def _compare(
    champion: LoadedScorer, challenger: ScorerArtifact, recent: CaseRows, window_days: int,
    base_data: LabelledEntities | None, split: TimeSplit | None, k: int,
) -> tuple[list[WindowComparison], list[str]]:
    models = {"champion": champion.artifact, "challenger": challenger}
    windows: list[WindowComparison] = []
    notes: list[str] = []
    if len(np.unique(recent.label)) > 1:
        windows.append(compare_on_cases(
            "recent_decided", f"final decisions of the last {window_days} days (point-in-time logged vectors)",
            recent, models, k))
        if pd.Series(recent.days).value_counts().max() <= k:
            notes.append(f"recent_decided: no day has more than k={k} decided cases, so the capacity metrics "
                         "(precision/recall/loss captured at k) cannot separate the models there")
    else:
        notes.append(f"recent window skipped: {len(recent)} decided cases, {int(recent.label.sum())} positive")
    if base_data is not None and split is not None:
        test = base_data.subset(split.test)
        evaluated = {role: evaluate_window(artifact, test, k) for role, artifact in models.items()}
        windows.append(WindowComparison(
            "base_test", f"base data from {split.cutoff:%Y-%m-%d} (its later window)", len(test), int(test.label.sum()),
            evaluated["champion"].model, evaluated["challenger"].model, evaluated["champion"].oracle))
    if not windows:
        raise ValueError("no window to compare the models on: " + "; ".join(notes))
    return windows, notes


def _data_counts(rows: CaseRows, decided: DecidedCases) -> dict[str, int]:
    facts = rows.facts
    sizes = facts.groupby(["source", "role"]).size()
    counts = {f"{source}.{role}": int(n) for (source, role), n in zip(sizes.index, sizes.to_numpy(), strict=True)}
    counts |= {"train": int((facts["role"] == "train").sum()), "valid": int((facts["role"] == "valid").sum()),
               "train_positives": int(facts.loc[facts["role"] == "train", "label"].sum()),
               "log.escalated_excluded": decided.escalated, "log.superseded_decisions": decided.superseded,
               "log.unscored_decisions": decided.unscored}
    return counts


def _clean(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _decision_text(windows: Sequence[WindowComparison], metric: str, margin: float, promoted: bool) -> str:
    parts = [f"{w.name}: challenger {w.challenger[metric]:.4f} vs champion {w.champion[metric]:.4f}" for w in windows]
    verdict = "wins" if promoted else "does not win"
    return f"{metric} (margin {margin:g}) — {'; '.join(parts)}: the challenger {verdict}."


def _log_report(report: RetrainReport) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "retrain_report.md").write_text(report.to_markdown())
        report.table().to_csv(out / "comparison.csv")
        (out / "comparison.json").write_text(json.dumps(
            {w.name: {"champion": finite(w.champion), "challenger": finite(w.challenger),
                      "oracle": finite(w.oracle) if w.oracle else None, "rows": w.rows, "positives": w.positives}
             for w in report.windows}, indent=2))
        mlflow.log_artifacts(str(out), artifact_path="comparison")
