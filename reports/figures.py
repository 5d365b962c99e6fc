"""Report figures, built on ``matplotlib.figure.Figure`` (no pyplot, so no global backend state)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from reports.config import DriftThresholds
from reports.drift import FeatureDrift

LEVEL_COLOURS = {"ok": "#4c78a8", "warn": "#f58518", "alert": "#e45756"}


def psi_bars(drifts: Sequence[FeatureDrift], score: FeatureDrift | None, thresholds: DriftThresholds) -> Figure:
    rows = [*drifts, *([score] if score is not None else [])]
    rows = sorted(rows, key=lambda d: d.psi)
    fig = Figure(figsize=(7, 0.32 * len(rows) + 1.4))
    ax = fig.subplots()
    # PSI has a long tail (a shifted column can reach 5+); clip the bars so small ones stay readable
    top = max(thresholds.psi_alert * 2, min(max((d.psi for d in rows), default=0.0) * 1.05, 2.0))
    ax.barh([("score" if d.kind == "score" else d.feature) for d in rows],
            [min(d.psi, top) for d in rows], color=[LEVEL_COLOURS[d.level] for d in rows])
    for i, d in enumerate(rows):
        ax.text(min(d.psi, top), i, f" {d.psi:.2f}", va="center", fontsize=7)
    ax.axvline(thresholds.psi_warn, color=LEVEL_COLOURS["warn"], linestyle="--", label=f"warn {thresholds.psi_warn}")
    ax.axvline(thresholds.psi_alert, color=LEVEL_COLOURS["alert"], linestyle="--",
               label=f"alert {thresholds.psi_alert}")
    ax.set(xlabel="PSI (current vs reference)", xlim=(0, top * 1.15), title="Population stability per feature")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def score_distribution(reference: np.ndarray, current: np.ndarray, score_psi: float | None) -> Figure:
    fig = Figure(figsize=(7, 3.8))
    ax = fig.subplots()
    ref, cur = reference[np.isfinite(reference)], current[np.isfinite(current)]
    # log-spaced bins: violation probabilities live near zero, a linear histogram hides everything there
    low = max(min(ref.min(initial=1.0), cur.min(initial=1.0)), 1e-4)
    bins = np.geomspace(low, 1.0, 40).tolist()
    ax.hist(np.clip(ref, low, 1), bins=bins, density=True, alpha=0.5, label=f"reference (n={len(ref):,})")
    ax.hist(np.clip(cur, low, 1), bins=bins, density=True, alpha=0.5, label=f"current (n={len(cur):,})")
    ax.set_xscale("log")
    title = "Score distribution" + (f" (PSI {score_psi:.3f})" if score_psi is not None else "")
    ax.set(xlabel="calibrated probability (log scale)", ylabel="density", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def precision_by_week(table: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(7, 3.8))
    ax = fig.subplots()
    for tier, group in table.groupby("tier"):
        if tier == "all":
            ax.plot(group["week"], group["precision"], marker="o", label="all", color="black", linewidth=2)
        else:
            ax.plot(group["week"], group["precision"], marker="o", label=str(tier))
    ax.set(ylabel="violations ÷ decided", ylim=(0, 1.02), title="Precision of reviewed cases by week and tier")
    ax.legend(fontsize=8, ncols=5)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def sla_attainment(table: pd.DataFrame, target: float) -> Figure:
    fig = Figure(figsize=(7, 3.4))
    ax = fig.subplots()
    tiers = [str(t) for t in table.index]
    ax.bar(tiers, table["attainment"].fillna(0).to_numpy(), color="#4c78a8")
    for i, (value, sla) in enumerate(zip(table["attainment"], table["sla_hours"], strict=True)):
        label = "n/a" if not np.isfinite(value) else f"{value:.0%}"
        ax.text(i, (0 if not np.isfinite(value) else value) + 0.02, f"{label}\n(SLA {sla:g} h)", ha="center",
                fontsize=8)
    ax.axhline(target, color=LEVEL_COLOURS["warn"], linestyle="--", label=f"target {target:.0%}")
    ax.set(ylim=(0, 1.2), ylabel="decided in SLA ÷ (decided + open overdue)", title="SLA attainment by tier")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def segment_lift(table: pd.DataFrame, top: int = 12) -> Figure:
    rows = table.head(top).iloc[::-1]
    fig = Figure(figsize=(8, 0.35 * len(rows) + 1.4))
    ax = fig.subplots()
    ax.barh(rows["segment"], rows["lift"], color="#e45756")
    for i, (lift, n, v) in enumerate(zip(rows["lift"], rows["cases"], rows["violations"], strict=True)):
        ax.text(lift, i, f" {lift:.1f}× ({v}/{n})", va="center", fontsize=7)
    ax.axvline(1.0, color="grey", linestyle=":")
    # room on the right for the "12.3× (v/n)" labels
    ax.set(xlabel="lift: violation rate in segment ÷ overall", title="Segments with the highest lift",
           xlim=(0, max(float(rows["lift"].max()), 1.0) * 1.4))
    fig.tight_layout()
    return fig


def drivers_by_week(table: pd.DataFrame) -> Figure:
    """``table``: weeks as rows, features as columns, mean signed contribution among confirmed violations."""
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    for feature in table.columns:
        ax.plot(table.index, table[feature], marker="o", label=str(feature))
    ax.axhline(0, color="grey", linestyle=":")
    ax.set(ylabel="mean SHAP contribution (log-odds)", title="Model drivers among confirmed violations, by week")
    ax.legend(fontsize=7, ncols=2)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def rule_backtest(table: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(8, 0.5 * max(len(table), 1) + 1.6))
    ax = fig.subplots()
    labels = [f"R{i + 1}" for i in range(len(table))][::-1]
    y = np.arange(len(table))
    ax.barh(y + 0.2, table["precision"].to_numpy()[::-1], height=0.4, label="precision", color="#4c78a8")
    ax.barh(y - 0.2, table["recall"].to_numpy()[::-1], height=0.4, label="recall", color="#f58518")
    if len(table):
        ax.axvline(float(table["base_rate"].iloc[0]), color="grey", linestyle=":", label="base rate")
    ax.set_yticks(y, labels)
    ax.set(xlim=(0, 1.02), title="Candidate rules, backtested on the later part of the window")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
