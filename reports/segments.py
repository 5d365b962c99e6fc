"""Segments (single columns and pairs) ranked by lift and loss, with a minimum support."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from reports.config import RcaConfig

OTHER = "other"
Z95 = 1.96


def wilson_lower(successes: np.ndarray, n: np.ndarray, z: float = Z95) -> np.ndarray:
    """Lower bound of the Wilson score interval: ranks a 6/10 segment below a 60/100 one."""
    n = np.maximum(n.astype(np.float64), 1.0)
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.asarray((centre - spread) / (1 + z * z / n))


def pool_rare(column: pd.Series, max_levels: int) -> pd.Series:
    keep = column.value_counts().index[:max_levels]
    return column.where(column.isin(keep), OTHER)


def segment_text(columns: Sequence[str], values: Sequence[str]) -> str:
    return " AND ".join(f"{c} = {v}" for c, v in zip(columns, values, strict=True))


def segment_table(
    segments: pd.DataFrame, label: np.ndarray, loss: np.ndarray, config: RcaConfig
) -> pd.DataFrame:
    """Every single-column segment and (with ``config.pairs``) column pair with at least ``min_support``
    cases and ``min_violations`` violations, sorted by the lower confidence bound of its lift.

    A pair is kept only if its lift beats both its single-column parents by 10 %: otherwise it is one of
    them restated. ``other`` (pooled rare values) and ``unknown`` are not reported as segments.
    """
    label = np.asarray(label, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    overall = float(label.mean()) if len(label) else float("nan")
    total_loss = float(loss.sum())
    pooled = pd.DataFrame({c: pool_rare(segments[c].astype(str), config.max_levels_per_column)
                           for c in segments.columns})
    pooled["_label"], pooled["_loss"] = label, loss
    column_sets: list[tuple[str, ...]] = [(c,) for c in segments.columns]
    if config.pairs:
        column_sets += list(combinations(segments.columns, 2))
    parts = []
    for cols in column_sets:
        grouped = pooled.groupby(list(cols), observed=True).agg(
            cases=("_label", "size"), violations=("_label", "sum"), loss=("_loss", "sum"))
        grouped = grouped[(grouped["cases"] >= config.min_support) & (grouped["violations"] >= config.min_violations)]
        for key, row in grouped.iterrows():
            values = key if isinstance(key, tuple) else (key,)
            values = tuple(str(v) for v in values)
            if OTHER in values or "unknown" in values:
                continue
            parts.append({"segment": segment_text(cols, values), "columns": cols, "values": values,
                          "cases": int(row["cases"]), "violations": int(row["violations"]), "loss": row["loss"]})
    table = pd.DataFrame(parts, columns=["segment", "columns", "values", "cases", "violations", "loss"])
    if table.empty or not overall > 0:
        return table.assign(rate=[], lift=[], lift_lower=[], loss_share=[])
    table["rate"] = table["violations"] / table["cases"]
    table["lift"] = table["rate"] / overall
    table["lift_lower"] = wilson_lower(table["violations"].to_numpy(), table["cases"].to_numpy()) / overall
    table["loss_share"] = table["loss"] / total_loss if total_loss > 0 else 0.0
    keys: list[tuple[tuple[str, ...], tuple[str, ...]]] = list(zip(table["columns"], table["values"], strict=True))
    lifts = table["lift"].to_numpy(dtype=np.float64)
    single_lift = {(cols[0], vals[0]): lift for (cols, vals), lift in zip(keys, lifts, strict=True) if len(cols) == 1}
    best_parent = np.array([
        max(single_lift.get((c, v), 0.0) for c, v in zip(cols, vals, strict=True)) if len(cols) == 2 else 0.0
        for cols, vals in keys
    ])
    table = table[(table["columns"].map(len) == 1).to_numpy() | (lifts > 1.1 * best_parent)]
    return table.sort_values(["lift_lower", "loss"], ascending=False).reset_index(drop=True)
