"""Shadow comparison: the champion's served scores against the challenger's shadow scores on the same decided
traffic, from the scoring log and the decisions store, point in time.

Also the closed loop's shared rules, used by `training.retrain` too: which decisions count as labels, which
loss a decided case carries, and the risk team's metrics over scores as they were logged.

Rules (one place, so retraining and comparison read decisions the same way):
- label: outcome `violation` → 1, `no_violation` → 0; `escalate` is not a final answer and is excluded.
- one case per entity: the latest final decision; its score is the entity's latest score at or before that
  decision (`DecisionStore.decisions_with_scores`), so nothing logged after the decision is ever used.
- loss: the decision's `loss_amount`; a violation recorded without an amount counts its exposure estimate
  (as `training.evaluation` does for data without ground truth), so it is not treated as costless.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from stores.decisions import MAX_DECIDED_AT_SKEW, DecisionStore, DecisionWithScore, Outcome
from stores.records import EntityType, ModelAlias, ScoreRecord, TimeWindow, utc_now
from training.metrics import capacity_metrics, expected_calibration_error, ranking_metrics
from triage.settings import TriageSettings

OUTCOME_LABELS: Mapping[Outcome, int] = {Outcome.VIOLATION: 1, Outcome.NO_VIOLATION: 0}
LOWER_IS_BETTER = frozenset({"brier", "ece"})
# Counts and settings that evaluate_ranking reports beside the metrics; not something a model wins on.
NOT_COMPARED = frozenset({"base_rate", "k_per_day", "days"})


# -- the shared rules ------------------------------------------------------------------------------------
def outcome_label(outcome: Outcome) -> int | None:
    """1 for a confirmed violation, 0 for a cleared case, None for an escalation (no final answer yet)."""
    return OUTCOME_LABELS.get(Outcome(outcome))


@dataclass(frozen=True)
class DecidedCase:
    """A final decision on an entity with the score that entity had when it was decided."""

    decision_id: str
    entity_id: str
    decided_at: datetime
    label: int
    loss_amount: float
    score: ScoreRecord


@dataclass(frozen=True)
class DecidedCases:
    cases: list[DecidedCase]
    escalated: int  # entities whose only decisions were escalations
    superseded: int  # earlier final decisions replaced by a later one on the same entity
    unscored: int  # final decisions whose entity had no matching score at or before the decision


def decided_cases(rows: Iterable[DecisionWithScore], entity: str) -> DecidedCases:
    """One case per entity of type `entity`: its latest final decision, with the point-in-time score."""
    latest: dict[str, DecisionWithScore] = {}
    escalated: set[str] = set()
    superseded = 0
    for row in rows:
        decision = row.decision
        if decision.entity_type != EntityType(entity):
            continue
        if outcome_label(decision.outcome) is None:
            escalated.add(decision.entity_id)
            continue
        before = latest.get(decision.entity_id)
        if before is not None:
            superseded += 1
            if (before.decision.decided_at, before.decision.decision_id) > (decision.decided_at, decision.decision_id):
                continue
        latest[decision.entity_id] = row
    cases: list[DecidedCase] = []
    unscored = 0
    for row in latest.values():
        if row.score is None:
            unscored += 1
            continue
        label = outcome_label(row.decision.outcome)
        assert label is not None  # escalations were skipped above
        cases.append(DecidedCase(row.decision.decision_id, row.decision.entity_id, row.decision.decided_at, label,
                                 row.decision.loss_amount, row.score))
    cases.sort(key=lambda c: (c.decided_at, c.decision_id))
    return DecidedCases(cases, len(escalated - set(latest)), superseded, unscored)


def logged_exposure(probability: np.ndarray, expected_loss: np.ndarray) -> np.ndarray:
    """Exposure does not depend on the model; the log keeps probability and expected loss, so recover it."""
    return np.where(probability > 0, expected_loss / np.maximum(probability, 1e-300), 0.0)


def case_loss(label: np.ndarray, loss_amount: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    return np.where(label == 1, np.where(loss_amount > 0, loss_amount, exposure), 0.0)


def scored_metrics(
    days: np.ndarray, label: np.ndarray, loss: np.ndarray, probability: np.ndarray, expected_loss: np.ndarray,
    k: int,
) -> dict[str, float]:
    """`training.metrics.evaluate_ranking`'s metrics for scores given as probability and expected loss (the
    queue's order). Ranking metrics are NaN when the cases hold one class only: there is nothing to rank."""
    if len(np.unique(label)) > 1:
        metrics = ranking_metrics(label, probability)
    else:
        metrics = {"roc_auc": math.nan, "pr_auc": math.nan,
                   "brier": float(np.mean((np.clip(probability, 0, 1) - label) ** 2)) if len(label) else math.nan,
                   "ece": expected_calibration_error(probability, label) if len(label) else math.nan,
                   "base_rate": float(label.mean()) if len(label) else math.nan}
    cap = capacity_metrics(days, label, loss, probability, expected_loss, k)
    metrics.update(precision_at_k=cap.precision_at_k, recall_at_k=cap.recall_at_k,
                   loss_captured_at_k=cap.loss_captured_at_k, k_per_day=float(k), days=float(cap.days))
    return metrics


def challenger_wins(challenger: float, champion: float, metric: str, margin: float) -> bool:
    """The promotion rule: better by more than `margin` (higher, or lower for brier/ece). NaN never wins."""
    if metric in LOWER_IS_BETTER:
        return bool(challenger < champion - margin)
    return bool(challenger > champion + margin)


def metric_table(champion: Mapping[str, float], challenger: Mapping[str, float]) -> pd.DataFrame:
    """Challenger vs champion per metric, with the difference and which is better."""
    rows = []
    for name in champion:
        if name in NOT_COMPARED or name not in challenger:
            continue
        a, b = float(champion[name]), float(challenger[name])
        if not (math.isfinite(a) and math.isfinite(b)) or a == b:
            better = "-"
        else:
            better = "challenger" if challenger_wins(b, a, name, 0.0) else "champion"
        rows.append({"metric": name, "champion": a, "challenger": b, "difference": b - a, "better": better})
    return pd.DataFrame(rows, columns=["metric", "champion", "challenger", "difference", "better"]).set_index("metric")


def markdown_table(frame: pd.DataFrame, float_format: str = "{:.4f}") -> str:
    """A GitHub markdown table (pandas' to_markdown needs `tabulate`, which the project does not ship)."""
    index_names = ["" if n is None else str(n) for n in frame.index.names]
    header = [*index_names, *map(str, frame.columns)]

    def cell(value: object) -> str:
        if isinstance(value, float | np.floating):
            return float_format.format(value) if math.isfinite(float(value)) else "n/a"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for key, row in frame.iterrows():
        keys = key if isinstance(key, tuple) else (key,)
        lines.append("| " + " | ".join([*map(cell, keys), *map(cell, row.tolist())]) + " |")
    return "\n".join(lines)


def finite(metrics: Mapping[str, float]) -> dict[str, float]:
    # MLflow would store NaN, but a NaN metric reads as a broken run in the UI: leave it out instead
    return {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}


# -- shadow comparison -----------------------------------------------------------------------------------
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
    from scipy.stats import spearmanr

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
    from stores.engine import make_engine
    from stores.schema import create_all
    from stores.scoring_log import ScoringLogReader
    from training.config import TrainConfig

    k = k if k is not None else TrainConfig().review_capacity_per_day[entity]
    model_name = settings.model_name(entity)
    end = now if now is not None else utc_now() + MAX_DECIDED_AT_SKEW
    engine = make_engine(settings.database_url)
    try:
        create_all(engine)
        reader = ScoringLogReader(engine)
        served = reader.scores_in_window(window, entity_type=EntityType(entity), model_name=model_name,
                                         model_alias=ModelAlias.CHAMPION, served=True)
        shadow = reader.scores_in_window(window, entity_type=EntityType(entity), model_name=model_name,
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
                     logged_exposure(champ_p, champ_el))
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
    import mlflow

    from training.pipeline import configure_mlflow

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
