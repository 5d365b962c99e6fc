"""The monitor: feature and score drift (PSI), reviewer precision, SLA attainment, alerts, an HTML page.

``run_monitor`` does the analysis on prepared inputs; ``monitor_from_dataset`` and ``monitor_from_stores``
build those inputs from a generated data set or from the scoring log and decision store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from policy.config import CapacityConfig, QueuePolicyConfig
from reports import figures
from reports.config import MonitorConfig
from reports.drift import FeatureDrift, feature_drift, matrix_drift
from reports.html import Section, figure_png, render_page
from reports.outcomes import (
    Alert,
    outcome_alerts,
    precision_by_tier,
    precision_by_week,
    sla_table,
    validate_review_frame,
)
from reports.sample import FeatureSample
from reports.sources import dataset_windows, log_sample, simulated_reviews, store_reviews
from reports.tracking import log_report
from training.datasets import load_entities

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from models.artifact import ScorerArtifact
    from stores.records import TimeWindow

SCORE_GAUGE_KEY = "__score__"


@dataclass(frozen=True)
class MonitorReport:
    entity: str
    created_at: datetime
    as_of: datetime
    reference: FeatureSample
    current: FeatureSample
    features: tuple[FeatureDrift, ...]
    score: FeatureDrift | None
    precision_tier: pd.DataFrame | None
    precision_week: pd.DataFrame | None
    sla: pd.DataFrame | None
    alerts: tuple[Alert, ...]
    config: MonitorConfig
    notes: tuple[str, ...] = field(default=())

    def drift(self, feature: str) -> FeatureDrift:
        for d in self.features:
            if d.feature == feature:
                return d
        raise KeyError(feature)

    def drift_table(self) -> pd.DataFrame:
        rows = [*self.features, *([self.score] if self.score is not None else [])]
        table = pd.DataFrame([{
            "feature": "score" if d.kind == "score" else d.feature, "kind": d.kind, "psi": d.psi, "level": d.level,
            "ks_pvalue": d.ks_pvalue, "missing_ref": d.reference_missing, "missing_cur": d.current_missing,
            "largest_bin_move": _bin_move(d),
        } for d in rows])
        return table.sort_values("psi", ascending=False).reset_index(drop=True)

    def alerted(self, level: str = "alert") -> list[str]:
        """Features at ``level`` (``"alert"``, or ``"warn"`` meaning warn or worse)."""
        levels = {"alert"} if level == "alert" else {"warn", "alert"}
        return [d.feature for d in self.features if d.level in levels]


def _bin_move(d: FeatureDrift) -> str:
    b = d.top_bin_change
    return "" if b is None else f"{b.label}: {b.reference:.1%} → {b.current:.1%}"


def drift_alerts(features: Sequence[FeatureDrift], score: FeatureDrift | None, config: MonitorConfig) -> list[Alert]:
    th = config.drift
    alerts = []
    for d in [*features, *([score] if score is not None else [])]:
        if d.level == "ok":
            continue
        limit = th.psi_alert if d.level == "alert" else th.psi_warn
        what = "The score distribution" if d.kind == "score" else f"Feature {d.feature!r}"
        alerts.append(Alert(
            d.level, "score_drift" if d.kind == "score" else "feature_drift", d.feature, d.psi, limit,
            f"{what} shifted: PSI {d.psi:.2f} ≥ {limit:g} (largest move {_bin_move(d)})",
        ))
    return alerts


def run_monitor(
    reference: FeatureSample,
    current: FeatureSample,
    *,
    reviews: pd.DataFrame | None = None,
    policy: QueuePolicyConfig | None = None,
    config: MonitorConfig | None = None,
    as_of: datetime | None = None,
    entity: str = "listing",
    progress: bool = False,
) -> MonitorReport:
    """Compare ``current`` traffic with ``reference`` and judge reviewer outcomes in ``reviews``.

    ``reviews`` is a review frame (see ``reports.outcomes``); ``as_of`` is the time open cases are aged
    to (default: now). Both samples must use the same feature encoding.
    """
    config = config or MonitorConfig()
    policy = policy or QueuePolicyConfig()
    as_of = as_of or datetime.now(UTC)
    if reference.feature_names != current.feature_names:
        raise ValueError("reference and current samples have different features")
    features = matrix_drift(
        reference.matrix, current.matrix, reference.feature_names, config.drift,
        categorical=reference.categorical, decoders=reference.decoders(), progress=progress,
    )
    score = None
    if reference.scores is not None and current.scores is not None:
        score = feature_drift("score", reference.scores, current.scores, config.drift, kind="score")
    alerts = drift_alerts(features, score, config)
    precision_tier = precision_week = sla = None
    notes = []
    if reviews is not None and len(reviews):
        reviews = validate_review_frame(reviews)
        precision_tier = precision_by_tier(reviews)
        precision_week = precision_by_week(reviews)
        sla = sla_table(reviews, policy, as_of)
        alerts += outcome_alerts(precision_week, sla, config.outcomes)
    else:
        notes.append("No reviewer decisions in the window: precision and SLA sections are empty.")
    # alerts first, then by how far past the threshold they are
    alerts.sort(key=lambda a: (a.level != "alert", -abs(a.value - a.threshold)))
    return MonitorReport(
        entity=entity, created_at=datetime.now(UTC), as_of=as_of, reference=reference, current=current,
        features=tuple(features), score=score, precision_tier=precision_tier, precision_week=precision_week,
        sla=sla, alerts=tuple(alerts), config=config, notes=tuple(notes),
    )


def drift_gauges(report: MonitorReport) -> dict[str, float]:
    """Feature name → PSI, plus the score PSI under ``SCORE_GAUGE_KEY`` (``"__score__"``), for gauges."""
    gauges = {d.feature: float(d.psi) for d in report.features}
    if report.score is not None:
        gauges[SCORE_GAUGE_KEY] = float(report.score.psi)
    return gauges


# -- rendering --------------------------------------------------------------------------------------


def monitor_figures(report: MonitorReport) -> dict[str, bytes]:
    """Name → PNG bytes of every figure in the report."""

    out = {"psi": figure_png(figures.psi_bars(report.features, report.score, report.config.drift))}
    if report.reference.scores is not None and report.current.scores is not None:
        psi = report.score.psi if report.score is not None else None
        out["score_distribution"] = figure_png(
            figures.score_distribution(report.reference.scores, report.current.scores, psi)
        )
    if report.precision_week is not None and len(report.precision_week):
        out["precision_by_week"] = figure_png(figures.precision_by_week(report.precision_week))
    if report.sla is not None and len(report.sla):
        out["sla_attainment"] = figure_png(figures.sla_attainment(report.sla, report.config.outcomes.sla_warn))
    return out


def render_monitor_html(report: MonitorReport, pngs: dict[str, bytes] | None = None) -> str:

    pngs = pngs if pngs is not None else monitor_figures(report)
    ref_range, cur_range = report.reference.time_range(), report.current.time_range()
    window = (f"reference {ref_range[0]} – {ref_range[1]} ({len(report.reference):,} rows); " if ref_range
              else f"reference {len(report.reference):,} rows; ")
    window += (f"current {cur_range[0]} – {cur_range[1]} ({len(report.current):,} rows)" if cur_range
               else f"current {len(report.current):,} rows")
    items = [(a.level, f"[{a.level.upper()}] {a.message}") for a in report.alerts] or [("ok", "No thresholds crossed.")]
    th = report.config.drift
    sections = [
        Section("Alerts", items=items, paragraphs=report.notes),
        Section(
            "Feature and score drift",
            paragraphs=[f"PSI with {th.bins} quantile bins from the reference (one bin per category; missing is "
                        f"its own bin). Warn at {th.psi_warn}, alert at {th.psi_alert}. KS p-values are "
                        "informational: at this volume tiny shifts are significant."],
            figures=[(name, pngs[name]) for name in ("psi", "score_distribution") if name in pngs],
            tables=[("", report.drift_table())],
        ),
    ]
    if report.precision_tier is not None:
        sections.append(Section(
            "Reviewer precision",
            paragraphs=["Violations ÷ cases with a final decision (escalations excluded), by decision week."],
            figures=[(n, pngs[n]) for n in ("precision_by_week",) if n in pngs],
            tables=[("By tier", report.precision_tier)],
        ))
    if report.sla is not None:
        sections.append(Section(
            "SLA attainment and queue age",
            paragraphs=["Decided within the tier's SLA ÷ (decided + open past due); ages in hours at "
                        f"{report.as_of.isoformat(timespec='minutes')}."],
            figures=[(n, pngs[n]) for n in ("sla_attainment",) if n in pngs],
            tables=[("", report.sla)],
        ))
    return render_page(f"Triage monitor — {report.entity} scorer",
                       f"{window}. Generated {report.created_at.isoformat(timespec='seconds')}.", sections)


@dataclass(frozen=True)
class WrittenReport:
    html: Path
    figures: dict[str, Path]
    mlflow_run_id: str | None


def write_monitor_report(
    report: MonitorReport,
    path: Path,
    *,
    figures_dir: Path | None = None,
    tracking_uri: str | None = None,
    run_id: str | None = None,
) -> WrittenReport:
    """Write the self-contained HTML to ``path`` (PNGs too, when ``figures_dir`` is given) and log it to
    MLflow (``run_id``, else the active run, else a new run when ``tracking_uri`` is given)."""

    pngs = monitor_figures(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_monitor_html(report, pngs), encoding="utf-8")
    written: dict[str, Path] = {}
    if figures_dir is not None:
        figures_dir.mkdir(parents=True, exist_ok=True)
        for name, png in pngs.items():
            written[name] = figures_dir / f"monitor_{name}.png"
            written[name].write_bytes(png)
    metrics = {f"psi.{k}": v for k, v in drift_gauges(report).items()}
    metrics["alerts"] = float(sum(a.level == "alert" for a in report.alerts))
    logged = log_report([path], tracking_uri=tracking_uri, run_id=run_id, metrics=metrics,
                        run_name=f"monitor-{report.entity}")
    return WrittenReport(path, written, logged)


# -- input builders ---------------------------------------------------------------------------------


def monitor_from_dataset(
    dataset_dir: Path,
    artifact: ScorerArtifact,
    *,
    reference_window: TimeWindow | None = None,
    current_window: TimeWindow | None = None,
    policy: QueuePolicyConfig | None = None,
    capacity: CapacityConfig | None = None,
    config: MonitorConfig | None = None,
    progress: bool = False,
) -> MonitorReport:
    """Monitor a generated data set: reference = the artifact's training window, current = its test window
    (or the windows given); reviews = a queue simulation of the current window at ``capacity`` with the
    observed labels as reviewer outcomes."""

    policy = policy or QueuePolicyConfig()
    data = load_entities(Path(dataset_dir), artifact.entity)
    ref_mask, cur_mask, cur_window = dataset_windows(data, artifact, reference_window, current_window)
    reference = FeatureSample.from_frame(data.frame.loc[ref_mask], artifact)
    current_data = data.subset(cur_mask)
    current = FeatureSample.from_frame(current_data.frame, artifact)
    reviews = simulated_reviews(current_data, artifact, cur_window, policy,
                                capacity or CapacityConfig(), progress=progress)
    return run_monitor(reference, current, reviews=reviews, policy=policy, config=config, as_of=cur_window.end,
                       entity=artifact.entity, progress=progress)


def monitor_from_stores(
    engine: Engine,
    artifact: ScorerArtifact,
    *,
    current_window: TimeWindow,
    reference_window: TimeWindow | None = None,
    reference: FeatureSample | None = None,
    model_name: str | None = None,
    policy: QueuePolicyConfig | None = None,
    config: MonitorConfig | None = None,
    progress: bool = False,
) -> MonitorReport:
    """Monitor live traffic: current = served scores in ``current_window`` from the scoring log; reference =
    ``reference`` (e.g. ``FeatureSample.from_frame`` on training data) or the log's ``reference_window``;
    reviews = decisions (joined point-in-time to scores) plus still-open scored cases."""

    if reference is None:
        if reference_window is None:
            raise ValueError("pass reference (a FeatureSample) or reference_window")
        reference = log_sample(engine, artifact, reference_window, model_name=model_name)
    current = log_sample(engine, artifact, current_window, model_name=model_name)
    config = config or MonitorConfig()
    reviews = store_reviews(engine, artifact.entity, current_window, model_name=model_name)
    return run_monitor(reference, current, reviews=reviews, policy=policy, config=config,
                       as_of=current_window.end, entity=artifact.entity, progress=progress)
