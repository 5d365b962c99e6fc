"""Shadow comparison (`triage compare`): the champion's served scores against the challenger's shadow scores
on the same decided traffic, from the scoring log and the decisions store, point in time (`loop.labels`)."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from loop.labels import case_loss, decided_cases
from loop.metrics import scored_metrics
from loop.report import finite, markdown_table
from stores.decisions import MAX_DECIDED_AT_SKEW, DecisionStore
from stores.engine import make_engine
from stores.migrate import upgrade
from stores.records import ModelAlias, ScoreRecord, TimeWindow, exposure_estimates, utc_now
from stores.scoring_log import ScoringLogReader
from training.pipeline import configure_mlflow
from training.promotion import metric_table
from triage.entities import ENTITIES
from triage.settings import TriageSettings


@dataclass(frozen=True)
class ComparisonReport:
    entity: str
    model_name: str
    window: TimeWindow
    champion_versions: tuple[str, ...]
    challenger_versions: tuple[str, ...]
    counts: dict[str, int]
    champion: dict[str, float]  # on decided shadow traffic
    challenger: dict[str, float]
    agreement: dict[str, float]
    run_id: str | None = None
    notes: tuple[str, ...] = field(default=())

    def table(self) -> pd.DataFrame:
        return metric_table(self.champion, self.challenger)

    def to_markdown(self) -> str:
        lines = [
            f"## Shadow comparison: {self.model_name} ({self.entity})",
            "",
            f"Window {self.window.start.isoformat()} – {self.window.end.isoformat()}; champion version(s) "
            f"{', '.join(self.champion_versions) or 'none'}, challenger version(s) "
            f"{', '.join(self.challenger_versions) or 'none'}.",
            "",
            "Decided shadow traffic (entities scored by both, with a final decision):",
            "",
            markdown_table(self.table()) if self.counts.get("decided_pairs", 0) else "_no decided shadow traffic_",
            "",
            "Agreement:",
            "",
            markdown_table(pd.DataFrame({"value": self.agreement}).rename_axis("measure")),
            "",
            "Counts:",
            "",
            markdown_table(pd.DataFrame({"count": self.counts}).rename_axis("what"), "{:.0f}"),
        ]
        lines += ["", *(f"- {note}" for note in self.notes)] if self.notes else []
        return "\n".join(lines) + "\n"


def _latest_per_entity(records: Sequence[ScoreRecord]) -> dict[str, ScoreRecord]:
    latest: dict[str, ScoreRecord] = {}
    for record in records:  # oldest first, so the last one wins
        latest[record.entity_id] = record
    return latest


def agreement(champion: Sequence[ScoreRecord], challenger: Sequence[ScoreRecord], prefix: str) -> dict[str, float]:
    """Rank correlation of the two models' probabilities and the share of entities put in the same tier."""
    n = len(champion)
    out = {f"{prefix}pairs": float(n)}
    if n == 0:
        return out
    a = np.array([r.probability for r in champion])
    b = np.array([r.probability for r in challenger])
    rho = float(spearmanr(a, b).statistic) if n > 2 and a.std() > 0 and b.std() > 0 else math.nan
    out[f"{prefix}rank_correlation"] = rho
    out[f"{prefix}tier_agreement"] = float(np.mean([x.tier == y.tier for x, y in zip(champion, challenger,
                                                                                    strict=True)]))
    return out


def compare_shadow(
    settings: TriageSettings, entity: str, window: TimeWindow, *, k: int | None = None, log_to_mlflow: bool = True,
    now: datetime | None = None,
) -> ComparisonReport:
    """Champion (served) vs challenger (shadow) on the traffic both scored in `window`.

    Metrics use the decided part of that traffic: each final decision made up to `now` on an entity scored in
    the window, joined point in time to the champion's served score and the challenger's shadow score the
    entity had when it was decided. Agreement uses all paired traffic and the decided part.
    `k` (cases reviewed per day) defaults to the training config's review capacity.
    """
    k = k if k is not None else ENTITIES.scored(entity).review_capacity_per_day
    model_name = settings.model_name(entity)
    end = now if now is not None else utc_now() + MAX_DECIDED_AT_SKEW
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        reader = ScoringLogReader(engine)
        served = reader.scores_in_window(window, entity_type=entity, model_name=model_name,
                                         model_alias=ModelAlias.CHAMPION, served=True)
        shadow = reader.scores_in_window(window, entity_type=entity, model_name=model_name,
                                         model_alias=ModelAlias.CHALLENGER, served=False)
        store = DecisionStore(engine)
        decision_window = TimeWindow(window.start, max(end, window.end))
        champion_rows = store.decisions_with_scores(decision_window, model_name=model_name, served=True)
        challenger_rows = store.decisions_with_scores(decision_window, model_name=model_name, served=False)
    finally:
        engine.dispose()

    champion_latest, challenger_latest = _latest_per_entity(served), _latest_per_entity(shadow)
    paired = sorted(set(champion_latest) & set(challenger_latest))
    decided = decided_cases(champion_rows, entity)
    challenger_by_decision = {r.decision.decision_id: r.score for r in challenger_rows}

    def in_window(record: ScoreRecord | None, alias: ModelAlias) -> bool:
        return record is not None and record.model_alias is alias and window.start <= record.scored_at < window.end

    pairs = [
        (case, challenger_by_decision[case.decision_id]) for case in decided.cases
        if in_window(case.score, ModelAlias.CHAMPION) and in_window(challenger_by_decision.get(case.decision_id),
                                                                    ModelAlias.CHALLENGER)
    ]
    champ_records = [case.score for case, _ in pairs]
    chall_records = [record for _, record in pairs if record is not None]
    label = np.array([case.label for case, _ in pairs], dtype=np.int8)
    days = np.array([r.scored_at.replace(tzinfo=None) for r in champ_records], dtype="datetime64[D]")
    champ_p = np.array([r.probability for r in champ_records], dtype=np.float64)
    champ_el = np.array([r.expected_loss for r in champ_records], dtype=np.float64)
    loss = case_loss(label, np.array([case.loss_amount for case, _ in pairs], dtype=np.float64),
                     exposure_estimates(champ_records))
    notes: list[str] = []
    if pairs:
        champion_metrics = scored_metrics(days, label, loss, champ_p, champ_el, k)
        challenger_metrics = scored_metrics(days, label, loss, np.array([r.probability for r in chall_records]),
                                            np.array([r.expected_loss for r in chall_records]), k)
        if len(np.unique(label)) < 2:
            notes.append("the decided shadow traffic holds one class only: ROC-AUC and PR-AUC are undefined")
    else:
        champion_metrics, challenger_metrics = {}, {}
        notes.append("no entity in the window was scored by both models and then decided")
    agree = agreement([champion_latest[e] for e in paired], [challenger_latest[e] for e in paired], "all_")
    agree |= agreement(champ_records, chall_records, "decided_")
    counts = {
        "champion_scores": len(served), "challenger_scores": len(shadow),
        "champion_entities": len(champion_latest), "challenger_entities": len(challenger_latest),
        "paired_entities": len(paired), "decided_pairs": len(pairs), "decided_positives": int(label.sum()),
        "escalated_excluded": decided.escalated, "decided_without_shadow": len(decided.cases) - len(pairs),
    }
    report = ComparisonReport(
        entity=entity, model_name=model_name, window=window,
        champion_versions=tuple(sorted({r.model_version for r in served})),
        challenger_versions=tuple(sorted({r.model_version for r in shadow})),
        counts=counts, champion=champion_metrics, challenger=challenger_metrics, agreement=agree,
        notes=tuple(notes),
    )
    if log_to_mlflow:
        report = _log_comparison(settings, report, k)
    return report


def _log_comparison(settings: TriageSettings, report: ComparisonReport, k: int) -> ComparisonReport:
    configure_mlflow(settings)
    with mlflow.start_run(run_name=f"compare-{report.entity}") as run:
        mlflow.set_tags({"entity": report.entity, "job": "compare-shadow"})
        mlflow.log_params({
            "entity": report.entity, "model_name": report.model_name, "k_per_day": k,
            "window_start": report.window.start.isoformat(), "window_end": report.window.end.isoformat(),
            "champion_versions": ",".join(report.champion_versions) or "none",
            "challenger_versions": ",".join(report.challenger_versions) or "none",
        })
        mlflow.log_metrics(finite({f"champion_{k_}": v for k_, v in report.champion.items()}))
        mlflow.log_metrics(finite({f"challenger_{k_}": v for k_, v in report.challenger.items()}))
        mlflow.log_metrics(finite({f"agreement_{k_}": v for k_, v in report.agreement.items()}))
        mlflow.log_metrics({f"count_{k_}": float(v) for k_, v in report.counts.items()})
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            (out / "comparison.md").write_text(report.to_markdown())
            report.table().to_csv(out / "comparison.csv")
            (out / "comparison.json").write_text(json.dumps(
                {"counts": report.counts, "agreement": finite(report.agreement),
                 "champion": finite(report.champion), "challenger": finite(report.challenger)}, indent=2))
            mlflow.log_artifacts(str(out), artifact_path="comparison")
    return replace(report, run_id=run.info.run_id)
