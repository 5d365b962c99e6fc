"""Plots logged with every training run. Figures are built without pyplot, so no global backend state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve

from models.artifact import ScorerArtifact


def plot_precision_recall(scored: pd.DataFrame, path: Path) -> Path:
    fig = Figure(figsize=(6, 4.5))
    ax = fig.subplots()
    curves = [("model", "probability")]
    if "true_prob" in scored:
        curves.append(("oracle (true probability)", "true_prob"))
    for label, column in curves:
        precision, recall, _ = precision_recall_curve(scored["label"], scored[column])
        ax.plot(recall, precision, label=label)
    ax.axhline(scored["label"].mean(), color="grey", linestyle=":", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall on the test window", ylim=(0, 1.02))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_calibration(scored: pd.DataFrame, path: Path, bins: int = 10) -> Path:
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    order = np.argsort(scored["probability"].to_numpy(), kind="stable")
    chunks = [c for c in np.array_split(order, bins) if len(c)]
    predicted = [scored["probability"].to_numpy()[c].mean() for c in chunks]
    observed = [scored["label"].to_numpy()[c].mean() for c in chunks]
    top = max(max(predicted), max(observed), 1e-3) * 1.05
    ax.plot([0, top], [0, top], color="grey", linestyle=":", label="perfect")
    ax.plot(predicted, observed, marker="o", label="model (equal-count bins)")
    ax.set(xlabel="predicted probability", ylabel="observed violation rate", title="Calibration, test window")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_feature_importance(artifact: ScorerArtifact, path: Path) -> Path:
    gain = artifact.booster.feature_importance(importance_type="gain")
    names = np.asarray(artifact.encoder.feature_names)
    order = np.argsort(gain)
    fig = Figure(figsize=(6, 0.3 * len(names) + 1))
    ax = fig.subplots()
    ax.barh(names[order], gain[order] / max(gain.sum(), 1e-12))
    ax.set(xlabel="share of total gain", title=f"{artifact.entity} scorer: feature importance")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
