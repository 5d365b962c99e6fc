"""Root-cause analysis of confirmed violations over a window: which segments concentrate them (lift and
loss), what the model leans on for them and how that moves week by week, and candidate queue rules with a
forward backtest. ``run_rca`` analyses a prepared case frame; ``rca_from_dataset`` / ``rca_from_stores``
build that frame from a generated data set or from the decision store and scoring log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from features import FeatureKind
from reports import figures
from reports.config import RcaConfig
from reports.html import Section, figure_png, render_page
from reports.outcomes import week_start
from reports.rules import Rule, learn_rules
from reports.segments import segment_table
from reports.sources import account_groups, dataset_windows, encoded_segments, raw_segments, segment_columns
from reports.tracking import log_report
from stores.decisions import DecisionStore, Outcome
from training.datasets import load_entities
from triage.entities import ENTITIES

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from models.artifact import ScorerArtifact
    from stores.records import TimeWindow

RCA_COLUMNS = ("scored_at", "label")


@dataclass(frozen=True)
class RcaReport:
    entity: str
    created_at: datetime
    window: tuple[datetime, datetime]
    cases: int
    violations: int
    base_rate: float
    total_loss: float
    segments: pd.DataFrame  # by lift (lower confidence bound), see reports.segments.segment_table
    drivers: pd.Series  # feature → mean signed contribution among confirmed violations
    drivers_by_week: pd.DataFrame  # week × feature
    driver_shift: pd.Series  # feature → last week minus first week
    rules: tuple[Rule, ...]
    split: dict[str, str]  # how rules were fitted and backtested
    backtest_start: datetime  # cases scored at or after this are the backtest part
    config: RcaConfig

    def top_segments(self, n: int | None = None) -> pd.DataFrame:
        return self.segments.head(n or self.config.top_segments)

    def segments_by_loss(self, n: int | None = None) -> pd.DataFrame:
        raised = self.segments[self.segments["lift"] > 1]
        return raised.sort_values("loss", ascending=False).head(n or self.config.top_segments)

    def rules_table(self) -> pd.DataFrame:
        rows = []
        for i, r in enumerate(self.rules, start=1):
            rows.append({
                "rule": f"R{i}", "conditions": r.text, "source": r.source,
                "fit_precision": r.fit.precision, "fit_recall": r.fit.recall,
                "precision": r.backtest.precision, "recall": r.backtest.recall, "coverage": r.backtest.coverage,
                "cases": r.backtest.cases, "violations": r.backtest.violations,
                "loss_caught": r.backtest.loss_caught, "loss_share": r.backtest.loss_share,
                "lift": r.backtest.lift, "base_rate": self.base_rate,
            })
        return pd.DataFrame(rows)

    def to_markdown(self) -> str:
        return rca_markdown(self)


def _numeric_columns(artifact: ScorerArtifact, matrix: np.ndarray) -> dict[str, np.ndarray]:
    fs = artifact.feature_set
    names = artifact.encoder.feature_names
    return {spec.name: matrix[:, names.index(spec.name)] for spec in fs.features if spec.kind is FeatureKind.NUMERIC}


def rule_design(
    cases: pd.DataFrame, artifact: ScorerArtifact, segment_columns: Sequence[str], matrix: np.ndarray | None = None
) -> pd.DataFrame:
    """What rule conditions read: the segment columns and the numeric model features (``Rule.mask`` on it)."""
    if matrix is None:
        matrix = artifact.encoder.transform_frame(cases)
    numeric = pd.DataFrame(_numeric_columns(artifact, matrix), index=cases.index)
    return pd.concat([cases[list(segment_columns)], numeric], axis=1)


def default_segment_columns(cases: pd.DataFrame, entity: str) -> list[str]:
    return [c for c in segment_columns(entity) if c in cases.columns]


def driver_tables(
    contributions: np.ndarray, names: Sequence[str], weeks: pd.Series, top: int
) -> tuple[pd.Series, pd.DataFrame, pd.Series]:
    frame = pd.DataFrame(contributions, columns=list(names))
    drivers = frame.mean().sort_values(key=np.abs, ascending=False)
    chosen = list(drivers.index[:top])
    by_week = frame[chosen].groupby(weeks.to_numpy()).mean().sort_index()
    shift = (by_week.iloc[-1] - by_week.iloc[0]) if len(by_week) >= 2 else pd.Series(0.0, index=chosen)
    return drivers, by_week, shift.sort_values(key=np.abs, ascending=False)


def run_rca(
    cases: pd.DataFrame,
    artifact: ScorerArtifact,
    *,
    matrix: np.ndarray | None = None,
    segment_columns: Sequence[str] | None = None,
    config: RcaConfig | None = None,
    progress: bool = False,
) -> RcaReport:
    """Analyse ``cases``: one row per scored (or decided) case over the window, with ``scored_at``
    (tz-aware), ``label`` (1 = confirmed violation), optional ``loss`` (loss of a confirmed violation) and
    the segment columns. ``matrix`` are the cases' encoded features; without it they are computed from the
    raw columns in ``cases`` with the artifact's encoder."""

    config = config or RcaConfig()
    missing = [c for c in RCA_COLUMNS if c not in cases.columns]
    if missing:
        raise ValueError(f"RCA case frame is missing columns {missing}")
    cases = cases.reset_index(drop=True)
    if matrix is None:
        matrix = artifact.encoder.transform_frame(cases)
    if len(matrix) != len(cases):
        raise ValueError("matrix must have one row per case")
    label = cases["label"].to_numpy(dtype=np.int8)
    loss = (cases["loss"].to_numpy(dtype=np.float64) if "loss" in cases else np.zeros(len(cases))) * (label > 0)
    times = pd.to_datetime(cases["scored_at"], utc=True)
    columns = [c for c in segment_columns if c in cases.columns] if segment_columns else default_segment_columns(
        cases, artifact.entity)
    steps = tqdm(total=3, desc="rca", disable=not progress, leave=False)
    segments = segment_table(cases[columns], label, loss, config)
    steps.update(1)

    positives = label > 0
    contributions = artifact.contributions(matrix[positives]) if positives.any() else np.zeros((0, matrix.shape[1]))
    drivers, by_week, shift = driver_tables(contributions, artifact.encoder.feature_names,
                                            week_start(times[positives]), config.top_drivers)
    steps.update(1)

    # forward split by time: rules learnt on the earlier cases, judged on the later ones
    order = np.argsort(times.to_numpy(), kind="stable")
    cut_index = order[min(int(len(order) * config.fit_fraction), len(order) - 1)]
    cut = times.iloc[cut_index]
    fit_mask = (times < cut).to_numpy()
    design = rule_design(cases, artifact, columns, matrix)
    numeric = [c for c in design.columns if c not in columns]
    rules = learn_rules(design, label, loss, fit_mask, categorical=columns, numeric=numeric, config=config)
    steps.update(1)
    steps.close()
    return RcaReport(
        entity=artifact.entity,
        created_at=datetime.now(UTC),
        window=(times.min().to_pydatetime(), times.max().to_pydatetime()),
        cases=len(cases), violations=int(positives.sum()), base_rate=float(label.mean()) if len(label) else 0.0,
        total_loss=float(loss.sum()), segments=segments, drivers=drivers, drivers_by_week=by_week,
        driver_shift=shift, rules=tuple(rules),
        split={"fit": f"{times.min().isoformat()} – {cut.isoformat()} ({int(fit_mask.sum()):,} cases)",
               "backtest": f"{cut.isoformat()} – {times.max().isoformat()} ({int((~fit_mask).sum()):,} cases)"},
        backtest_start=cut.to_pydatetime(), config=config,
    )


# -- rendering --------------------------------------------------------------------------------------


def _fmt(value: float, pct: bool = True) -> str:
    if not np.isfinite(value):
        return "–"
    return f"{value:.1%}" if pct else f"{value:,.0f}"


def rca_markdown(report: RcaReport) -> str:
    start, end = (t.isoformat(timespec="minutes") for t in report.window)
    lines = [
        f"# Root-cause analysis — {report.entity} violations",
        "",
        f"Window {start} – {end}: {report.cases:,} cases, {report.violations:,} confirmed violations "
        f"(base rate {report.base_rate:.2%}), confirmed loss {report.total_loss:,.0f}.",
        "",
        "## Segments with the highest lift",
        "",
        "| segment | cases | violations | rate | lift | loss share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in report.top_segments(10).itertuples():
        lines.append(f"| {s.segment} | {s.cases:,} | {s.violations:,} | {s.rate:.1%} | {s.lift:.1f}× | "
                     f"{_fmt(float(s.loss_share))} |")  # type: ignore[arg-type]
    lines += ["", "## What the model leans on for confirmed violations", "",
              "Mean signed TreeSHAP contribution (log-odds) among confirmed violations; shift = last week − first "
              "week.", "", "| feature | mean contribution | shift |", "|---|---:|---:|"]
    for feature in report.drivers.index[: report.config.top_drivers]:
        shift = report.driver_shift.get(feature, np.nan)
        lines.append(f"| {feature} | {report.drivers[feature]:+.3f} | {shift:+.3f} |")
    lines += ["", "## Candidate rules", "",
              f"Fitted on {report.split['fit']}; backtested on {report.split['backtest']}.", "",
              "| rule | conditions | precision | recall | coverage | loss caught |", "|---|---|---:|---:|---:|---:|"]
    for i, r in enumerate(report.rules, start=1):
        b = r.backtest
        lines.append(f"| R{i} | `{r.text}` | {_fmt(b.precision)} | {_fmt(b.recall)} | {_fmt(b.coverage)} | "
                     f"{_fmt(b.loss_caught, pct=False)} ({_fmt(b.loss_share)}) |")
    if not report.rules:
        lines.append("| – | no leaf reached the minimum lift and support | | | | |")
    return "\n".join(lines) + "\n"


def rca_figures(report: RcaReport) -> dict[str, bytes]:

    out = {}
    if len(report.segments):
        out["segments"] = figure_png(figures.segment_lift(report.segments))
    if len(report.drivers_by_week):
        out["drivers_by_week"] = figure_png(figures.drivers_by_week(report.drivers_by_week))
    if report.rules:
        out["rules"] = figure_png(figures.rule_backtest(report.rules_table()))
    return out


def render_rca_html(report: RcaReport, pngs: dict[str, bytes] | None = None) -> str:

    pngs = pngs if pngs is not None else rca_figures(report)
    start, end = (t.isoformat(timespec="minutes") for t in report.window)
    segment_cols = ["segment", "cases", "violations", "rate", "lift", "lift_lower", "loss", "loss_share"]
    drivers = pd.DataFrame({"mean_contribution": report.drivers, "shift": report.driver_shift}).dropna(how="all")
    sections = [
        Section("Segments", paragraphs=[
            f"Violation rate in segment ÷ overall ({report.base_rate:.2%}); at least {report.config.min_support} "
            f"cases and {report.config.min_violations} violations; sorted by the lower 95 % bound of the lift."],
            figures=[(n, pngs[n]) for n in ("segments",) if n in pngs],
            tables=[("By lift", report.top_segments()[segment_cols]),
                    ("By loss (lift > 1)", report.segments_by_loss()[segment_cols])]),
        Section("Model drivers", paragraphs=[
            "Mean signed TreeSHAP contribution among confirmed violations, by week of scoring."],
            figures=[(n, pngs[n]) for n in ("drivers_by_week",) if n in pngs],
            tables=[("", drivers.head(report.config.top_drivers * 2))]),
        Section("Candidate rules", paragraphs=[
            f"Shallow decision trees fitted on {report.split['fit']}, backtested on {report.split['backtest']}."],
            figures=[(n, pngs[n]) for n in ("rules",) if n in pngs],
            tables=[("", report.rules_table())]),
    ]
    return render_page(f"Root-cause analysis — {report.entity} violations",
                       f"Window {start} – {end}: {report.cases:,} cases, {report.violations:,} confirmed violations.",
                       sections)


@dataclass(frozen=True)
class WrittenRca:
    html: Path
    markdown: Path
    figures: dict[str, Path]
    mlflow_run_id: str | None


def write_rca_report(
    report: RcaReport,
    out_dir: Path,
    *,
    figures: bool = True,
    tracking_uri: str | None = None,
    run_id: str | None = None,
) -> WrittenRca:
    """Write ``rca.html`` (self-contained), ``rca.md`` and, with ``figures``, the PNGs into ``out_dir``."""

    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = rca_figures(report)
    html_path, md_path = out_dir / "rca.html", out_dir / "rca.md"
    html_path.write_text(render_rca_html(report, pngs), encoding="utf-8")
    md_path.write_text(report.to_markdown(), encoding="utf-8")
    written = {}
    if figures:
        for name, png in pngs.items():
            written[name] = out_dir / f"rca_{name}.png"
            written[name].write_bytes(png)
    logged = log_report([html_path, md_path], tracking_uri=tracking_uri, run_id=run_id,
                        metrics={"rca.violations": report.violations, "rca.rules": len(report.rules)},
                        run_name=f"rca-{report.entity}")
    return WrittenRca(html_path, md_path, written, logged)


# -- input builders ---------------------------------------------------------------------------------


def rca_frame_from_dataset(
    dataset_dir: Path, artifact: ScorerArtifact, window: TimeWindow | None = None
) -> pd.DataFrame:
    """The data set's cases in ``window`` (default: the artifact's test window) with label = the observed
    investigator label, loss = the true exposure of confirmed violations, and the segment columns."""

    dataset_dir = Path(dataset_dir)
    data = load_entities(dataset_dir, artifact.entity)
    _, mask, _ = dataset_windows(data, artifact, None, window)
    sub = data.subset(mask)
    groups = _dataset_groups(dataset_dir)
    frame = sub.frame.copy()
    segments = raw_segments(frame, artifact.entity, groups)
    for column in segments.columns:
        if column not in frame.columns or column in ("account_age_band", "group"):
            frame[column] = segments[column].to_numpy()
    frame["scored_at"] = sub.times.to_numpy()
    frame["label"] = sub.label
    if sub.truth is not None and "exposure_if_violation" in sub.truth:
        frame["loss"] = sub.truth["exposure_if_violation"].to_numpy() * sub.label
    else:
        frame["loss"] = artifact.score_frame(frame)["exposure"].to_numpy() * sub.label
    return frame


def _dataset_groups(dataset_dir: Path) -> pd.Series | None:
    """The data set's account groups (the group entity type's members' shared identifiers), if it has them."""

    for group in (spec for spec in ENTITIES if spec.members is not None):
        identifiers = ENTITIES.get(str(group.members)).identifiers_file
        if identifiers is not None and (dataset_dir / identifiers).is_file():
            return account_groups(pd.read_parquet(dataset_dir / identifiers))
    return None


def rca_from_dataset(
    dataset_dir: Path,
    artifact: ScorerArtifact,
    *,
    window: TimeWindow | None = None,
    config: RcaConfig | None = None,
    progress: bool = False,
) -> RcaReport:
    frame = rca_frame_from_dataset(dataset_dir, artifact, window)
    return run_rca(frame, artifact, config=config, progress=progress)


def rca_from_stores(
    engine: Engine,
    artifact: ScorerArtifact,
    window: TimeWindow,
    *,
    model_name: str | None = None,
    config: RcaConfig | None = None,
    progress: bool = False,
) -> RcaReport:
    """Decided cases in ``window`` (final outcomes only) with the feature vector their entity had when
    decided; label = outcome is ``violation``, loss = the reviewer's ``loss_amount``. Segments are the
    categorical features decoded from the vector plus the age band (raw-only columns such as the seller's
    country are not in the log)."""


    entity_type = artifact.entity
    rows, vectors = [], []
    for item in DecisionStore(engine).decisions_with_scores(window, model_name=model_name, served=True):
        d, score = item.decision, item.score
        if d.entity_type != entity_type or score is None or d.outcome is Outcome.ESCALATE:
            continue
        if score.feature_names_hash != artifact.schema_hash:
            continue
        rows.append({"entity_id": d.entity_id, "scored_at": score.scored_at,
                     "label": int(d.outcome is Outcome.VIOLATION), "loss": d.loss_amount})
        vectors.append(score.feature_vector)
    if not rows:
        raise ValueError(f"no decided {artifact.entity} cases with scores of this model's schema in {window}")
    matrix = np.asarray(vectors, dtype=np.float64)
    frame = pd.concat([pd.DataFrame(rows), encoded_segments(matrix, artifact)], axis=1)
    return run_rca(frame, artifact, matrix=matrix, config=config, progress=progress)
