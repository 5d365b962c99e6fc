"""Backtesting a policy rule on labelled rows before it goes live: what it hits, what it catches, and what it adds
to the rules already active.

Pure: plain columns (or a frame) of the rule variables, the truth per row (``is_violation``: reviewer labels or
the generator's ground truth) and the loss and harm a row's violation causes if nobody acts. Data-set and
scoring-log adapters build these inputs elsewhere.

Per rule set (the rule alone, the active set without it, the active set with it, and the rows only the rule hits):
``hits``, ``coverage`` = hits / rows, ``violations_caught`` = hit rows that are violations, ``precision`` =
violations caught / hits, ``recall`` = violations caught / violations, and the loss and harm of the violations
caught (a row that is not a violation contributes none, whatever its loss column says).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from policy.rule_engine import RuleSet, VariableKind, normalise_variables
from policy.rulebook import Rule, RuleMode


@dataclass(frozen=True, slots=True)
class BacktestMetrics:
    rows: int
    hits: int
    coverage: float
    violations: int
    violations_caught: int
    precision: float  # NaN when nothing was hit
    recall: float  # NaN when there is no violation
    loss_caught: float
    loss_total: float
    harm_caught: float
    harm_total: float


@dataclass(frozen=True, slots=True)
class RuleBacktest:
    """A rule's backtest: alone, the active set with and without it, and the rows only it hits (``added``)."""

    rule: Rule
    alone: BacktestMetrics
    active_without: BacktestMetrics
    active_with: BacktestMetrics
    added: BacktestMetrics
    # rows where the rule's condition could not be evaluated (see policy.rule_engine): not hits
    errors: int
    missing: int


def columns_from_frame(frame: pd.DataFrame, variables: Mapping[str, VariableKind | str]) -> dict[str, np.ndarray]:
    """The variables present in ``frame`` as rule columns: numbers as float64 with NaN for missing (unparseable
    text too), strings as str with "" for missing."""
    kinds = normalise_variables(variables)
    out: dict[str, np.ndarray] = {}
    for name, kind in kinds.items():
        if name not in frame.columns:
            continue
        if kind is VariableKind.NUMBER:
            out[name] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = frame[name].astype(object).where(frame[name].notna(), "")
            out[name] = np.array([v if isinstance(v, str) else str(v) for v in values.tolist()], dtype=object)
    return out


def _numbers(values: npt.ArrayLike, name: str, n: int) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.shape[0] != n:
        raise ValueError(f"{name} has {array.shape[0]} values for {n} rows")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (drop unlabelled rows before backtesting)")
    if np.any(array < 0):
        raise ValueError(f"{name} must not be negative")
    return array


def _labels(values: npt.ArrayLike, n: int) -> npt.NDArray[np.bool_]:
    array = np.asarray(values)
    if array.dtype != np.bool_:
        numbers = np.asarray(array, dtype=np.float64).reshape(-1)
        if not np.all(np.isin(numbers, (0.0, 1.0))):
            raise ValueError("is_violation must be boolean or 0/1 (drop unlabelled rows before backtesting)")
        array = numbers == 1.0
    array = array.reshape(-1)
    if array.shape[0] != n:
        raise ValueError(f"is_violation has {array.shape[0]} values for {n} rows")
    return array.astype(bool)


def backtest_metrics(hit: npt.NDArray[np.bool_], is_violation: npt.NDArray[np.bool_],
                     loss: npt.NDArray[np.float64], harm: npt.NDArray[np.float64]) -> BacktestMetrics:
    """The metrics of one boolean hit column against the truth."""
    rows = int(hit.shape[0])
    hits = int(hit.sum())
    violations = int(is_violation.sum())
    caught = hit & is_violation
    n_caught = int(caught.sum())
    return BacktestMetrics(
        rows=rows,
        hits=hits,
        coverage=hits / rows if rows else math.nan,
        violations=violations,
        violations_caught=n_caught,
        precision=n_caught / hits if hits else math.nan,
        recall=n_caught / violations if violations else math.nan,
        loss_caught=float(loss[caught].sum()),
        loss_total=float(loss[is_violation].sum()),
        harm_caught=float(harm[caught].sum()),
        harm_total=float(harm[is_violation].sum()),
    )


def backtest_rule(
    rule: Rule,
    columns: Mapping[str, npt.ArrayLike] | pd.DataFrame,
    *,
    variables: Mapping[str, VariableKind | str],
    is_violation: npt.ArrayLike,
    loss: npt.ArrayLike,
    harm: npt.ArrayLike,
    active: Sequence[Rule] = (),
) -> RuleBacktest:
    """Backtest ``rule`` (whatever its mode) on labelled rows, next to the ``active`` rules.

    An earlier version of the same rule among ``active`` counts on the "without" side and is replaced by this
    version on the "with" side (and in ``added``): "with" is the set as it would be once this version is live.
    """
    if isinstance(columns, pd.DataFrame):
        n_rows = len(columns)
        data: Mapping[str, npt.ArrayLike] = columns_from_frame(columns, variables)
    else:
        data = columns
        lengths = {np.asarray(v).shape[0] for v in data.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns have different lengths {sorted(lengths)}")
        n_rows = lengths.pop() if lengths else np.asarray(is_violation).reshape(-1).shape[0]
    labels = _labels(is_violation, n_rows)
    loss_values = _numbers(loss, "loss", n_rows)
    harm_values = _numbers(harm, "harm", n_rows)
    not_active = [r.label for r in active if r.mode is not RuleMode.ACTIVE]
    if not_active:
        raise ValueError(f"active rules must be in mode active: {not_active}")

    candidate = RuleSet.from_rules([rule.model_copy(update={"mode": RuleMode.SHADOW})], variables)
    candidate_hits = candidate.evaluate(data, n_rows)
    alone: npt.NDArray[np.bool_] = candidate_hits.matrix[:, 0]
    active_set = RuleSet.from_rules(list(active), variables)
    active_matrix = active_set.evaluate(data, n_rows).matrix
    others = np.array([r.rule_id != rule.rule_id for r in active_set.rules], dtype=bool)
    # any() over no columns is all False: no active rule hits anything
    without: npt.NDArray[np.bool_] = np.asarray(active_matrix.any(axis=1), dtype=bool)
    others_hit: npt.NDArray[np.bool_] = np.asarray(active_matrix[:, others].any(axis=1), dtype=bool)
    with_rule = others_hit | alone

    def metrics(hit: npt.NDArray[np.bool_]) -> BacktestMetrics:
        return backtest_metrics(hit, labels, loss_values, harm_values)

    return RuleBacktest(
        rule=rule,
        alone=metrics(alone),
        active_without=metrics(without),
        active_with=metrics(with_rule),
        added=metrics(alone & ~others_hit),
        errors=candidate_hits.errors[rule.rule_id],
        missing=candidate_hits.missing[rule.rule_id],
    )
