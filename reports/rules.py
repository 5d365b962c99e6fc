"""Candidate rules from a shallow decision tree, as readable conditions with a forward backtest.

The tree (scikit-learn, balanced class weights, leaves of at least ``min_support`` cases) is fitted on the
earlier part of the window; each leaf whose violation rate is at least ``min_rule_lift`` × the base rate
becomes a rule (the AND of the conditions on its path). Rules are then scored by evaluating those
conditions, not the tree, on the later part, so what is reported is what the rule text would do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

from reports.config import RcaConfig
from reports.segments import pool_rare

ONE_HOT_SEP = " = "


@dataclass(frozen=True)
class Condition:
    column: str
    op: str  # "=", "!=", "<=", ">"
    value: str | float
    includes_missing: bool = False

    def text(self) -> str:
        value = self.value if isinstance(self.value, str) else f"{self.value:.3g}"
        suffix = " (or unknown)" if self.includes_missing else ""
        return f"{self.column} {self.op} {value}{suffix}"

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        column = frame[self.column]
        if self.op in ("=", "!="):
            hit = (column.astype(str) == str(self.value)).to_numpy()
            return hit if self.op == "=" else ~hit
        values = column.to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            hit = values <= float(self.value) if self.op == "<=" else values > float(self.value)
        return hit | (np.isnan(values) & self.includes_missing)


@dataclass(frozen=True)
class RuleStats:
    cases: int
    violations: int
    precision: float
    recall: float
    coverage: float  # share of all cases the rule flags
    loss_caught: float
    loss_share: float
    lift: float


@dataclass(frozen=True)
class Rule:
    conditions: tuple[Condition, ...]
    source: str  # which learner proposed it
    fit: RuleStats
    backtest: RuleStats

    @property
    def text(self) -> str:
        return " AND ".join(c.text() for c in self.conditions)

    def columns(self) -> set[str]:
        return {c.column for c in self.conditions}

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        return conditions_mask(self.conditions, frame)


def conditions_mask(conditions: Sequence[Condition], frame: pd.DataFrame) -> np.ndarray:
    out = np.ones(len(frame), dtype=bool)
    for condition in conditions:
        out &= condition.mask(frame)
    return out


def rule_stats(hit: np.ndarray, label: np.ndarray, loss: np.ndarray) -> RuleStats:
    n, positives = len(label), float(label.sum())
    cases, violations = int(hit.sum()), int(label[hit].sum())
    precision = violations / cases if cases else math.nan
    base = positives / n if n else math.nan
    total_loss = float(loss.sum())
    caught = float(loss[hit].sum())
    return RuleStats(
        cases=cases, violations=violations, precision=precision,
        recall=violations / positives if positives else math.nan, coverage=cases / n if n else math.nan,
        loss_caught=caught, loss_share=caught / total_loss if total_loss > 0 else math.nan,
        lift=precision / base if base and cases else math.nan,
    )


def _design(frame: pd.DataFrame, categorical: Sequence[str], numeric: Sequence[str], min_support: int,
            max_levels: int) -> pd.DataFrame:
    """Tree input: one indicator per frequent category level, numeric features as they are (NaN kept)."""
    parts = {}
    for column in categorical:
        pooled = pool_rare(frame[column].astype(str), max_levels)
        for level, count in pooled.value_counts().items():
            if count >= min_support and level not in ("other", "unknown"):
                parts[f"{column}{ONE_HOT_SEP}{level}"] = (pooled == level).to_numpy(dtype=np.float64)
    for column in numeric:
        parts[column] = frame[column].to_numpy(dtype=np.float64)
    return pd.DataFrame(parts, index=frame.index)


def _merge(conditions: list[Condition]) -> tuple[Condition, ...]:
    """Drop redundant conditions on the same column: the tightest bound wins, and an equality makes
    any inequality on the same column moot."""
    out: list[Condition] = []
    equal = {c.column for c in conditions if c.op == "="}
    for c in conditions:
        if c.op == "!=" and c.column in equal:
            continue
        same = [o for o in out if o.column == c.column and o.op == c.op and c.op in ("<=", ">")]
        if same:
            old = same[0]
            tighter = (float(c.value) < float(old.value)) if c.op == "<=" else (float(c.value) > float(old.value))
            if tighter:
                out[out.index(old)] = Condition(c.column, c.op, c.value, c.includes_missing and old.includes_missing)
            continue
        out.append(c)
    return tuple(out)


def _tree_paths(tree: object, names: Sequence[str], one_hot: set[str]) -> list[tuple[int, tuple[Condition, ...]]]:
    t = tree.tree_  # type: ignore[attr-defined]
    missing_left = getattr(t, "missing_go_to_left", np.zeros(t.node_count, dtype=bool))
    out: list[tuple[int, tuple[Condition, ...]]] = []

    def walk(node: int, path: list[Condition]) -> None:
        left, right = t.children_left[node], t.children_right[node]
        if left == right:  # a leaf
            out.append((node, _merge(path)))
            return
        name = names[t.feature[node]]
        if name in one_hot:
            column, level = name.split(ONE_HOT_SEP, 1)
            walk(left, [*path, Condition(column, "!=", level)])
            walk(right, [*path, Condition(column, "=", level)])
        else:
            threshold = float(t.threshold[node])
            walk(left, [*path, Condition(name, "<=", threshold, bool(missing_left[node]))])
            walk(right, [*path, Condition(name, ">", threshold, not bool(missing_left[node]))])

    walk(0, [])
    return out


def learn_rules(
    frame: pd.DataFrame,
    label: np.ndarray,
    loss: np.ndarray,
    fit_mask: np.ndarray,
    *,
    categorical: Sequence[str],
    numeric: Sequence[str],
    config: RcaConfig,
    seed: int = 0,
) -> list[Rule]:
    """Rules from two trees fitted on ``fit_mask`` rows: one over segments and model features, one over
    segments only (easier to act on as a queue rule); deduplicated, best fit-window F1 first."""

    label = np.asarray(label, dtype=np.int8)
    loss = np.asarray(loss, dtype=np.float64)
    back_mask = ~fit_mask
    base = float(label[fit_mask].mean()) if fit_mask.any() else 0.0
    if base <= 0 or label[fit_mask].min() == label[fit_mask].max():
        return []
    min_leaf = max(config.min_support, int(0.002 * fit_mask.sum()))
    rules: dict[str, Rule] = {}
    for source, numeric_used in (("tree: segments + features", numeric), ("tree: segments", ())):
        design = _design(frame, categorical, numeric_used, min_leaf, config.max_levels_per_column)
        if design.shape[1] == 0:
            continue
        one_hot = {c for c in design.columns if ONE_HOT_SEP in c}
        tree = DecisionTreeClassifier(max_depth=config.tree_max_depth, min_samples_leaf=min_leaf,
                                      class_weight="balanced", random_state=seed)
        tree.fit(design.loc[fit_mask], label[fit_mask])
        for _, conditions in _tree_paths(tree, list(design.columns), one_hot):
            if not conditions:
                continue
            hit = conditions_mask(conditions, frame)
            fit = rule_stats(hit[fit_mask], label[fit_mask], loss[fit_mask])
            if fit.cases < config.min_support or not fit.precision >= config.min_rule_lift * base:
                continue
            backtest = rule_stats(hit[back_mask], label[back_mask], loss[back_mask])
            rule = Rule(conditions, source, fit, backtest)
            rules.setdefault(rule.text, rule)

    def f1(stats: RuleStats) -> float:
        p, r = stats.precision, stats.recall
        return 0.0 if not (p > 0 and r > 0) else 2 * p * r / (p + r)

    return sorted(rules.values(), key=lambda r: -f1(r.fit))[: config.max_rules]
