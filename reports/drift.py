"""Population stability index (PSI) per feature and for the score, with an optional two-sample KS test.

Bins come from the reference only, so the current window is judged against a fixed yardstick:
numeric features get quantile bins (or one bin per value when the reference has few distinct values, e.g.
counts and flags); categorical features one bin per category. Missing values (NaN, which is also what an
unseen category becomes in the encoder) are a bin of their own, so a rise in missingness is drift too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import ks_2samp
from tqdm.auto import tqdm

from reports.config import DriftThresholds

MISSING_LABEL = "missing"
OTHER_LABEL = "other"


@dataclass(frozen=True)
class BinShare:
    label: str
    reference: float
    current: float


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # "numeric", "categorical" or "score"
    psi: float
    level: str  # "ok", "warn", "alert" ("ok" also when too few rows to judge)
    reference_rows: int
    current_rows: int
    reference_missing: float
    current_missing: float
    ks_statistic: float | None
    ks_pvalue: float | None
    bins: tuple[BinShare, ...]

    @property
    def top_bin_change(self) -> BinShare | None:
        """The bin whose share moved most: the one-line "what changed" for an alert message."""
        if not self.bins:
            return None
        return max(self.bins, key=lambda b: abs(b.current - b.reference))


def psi_from_counts(reference: np.ndarray, current: np.ndarray, min_share: float) -> float:
    ref = np.maximum(reference / max(reference.sum(), 1), min_share)
    cur = np.maximum(current / max(current.sum(), 1), min_share)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _format_edge(value: float) -> str:
    return f"{value:.3g}"


def _numeric_bins(
    reference: np.ndarray, current: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    ref_ok, cur_ok = ~np.isnan(reference), ~np.isnan(current)
    ref_vals, cur_vals = reference[ref_ok], current[cur_ok]
    distinct = np.unique(ref_vals)
    if 0 < len(distinct) <= bins:
        # discrete feature (counts, flags): one bin per reference value, anything else is "other"
        ref_idx = np.searchsorted(distinct, ref_vals)
        cur_pos = np.clip(np.searchsorted(distinct, cur_vals), 0, len(distinct) - 1)
        cur_idx = np.where(distinct[cur_pos] == cur_vals, cur_pos, len(distinct))
        n_bins = len(distinct) + 1
        labels = [_format_edge(v) for v in distinct] + [OTHER_LABEL]
    else:
        edges = np.unique(np.quantile(ref_vals, np.linspace(0, 1, bins + 1)[1:-1])) if len(ref_vals) else np.array([])
        ref_idx = np.searchsorted(edges, ref_vals, side="right")
        cur_idx = np.searchsorted(edges, cur_vals, side="right")
        n_bins = len(edges) + 1
        bounds = ["-inf", *(_format_edge(e) for e in edges), "inf"]
        labels = [f"[{lo}, {hi})" for lo, hi in itertools.pairwise(bounds)]
    ref_counts = np.bincount(ref_idx, minlength=n_bins).astype(np.float64)
    cur_counts = np.bincount(cur_idx, minlength=n_bins).astype(np.float64)
    ref_counts = np.append(ref_counts, (~ref_ok).sum())
    cur_counts = np.append(cur_counts, (~cur_ok).sum())
    return ref_counts, cur_counts, [*labels, MISSING_LABEL]


def _categorical_bins(
    reference: np.ndarray, current: np.ndarray, decode: Callable[[float], str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    ref_ok, cur_ok = ~np.isnan(reference), ~np.isnan(current)
    # every category seen on either side gets a bin: a category new in the current window is drift
    levels = np.union1d(np.unique(reference[ref_ok]), np.unique(current[cur_ok]))
    ref_counts = np.bincount(np.searchsorted(levels, reference[ref_ok]), minlength=len(levels)).astype(np.float64)
    cur_counts = np.bincount(np.searchsorted(levels, current[cur_ok]), minlength=len(levels)).astype(np.float64)
    ref_counts = np.append(ref_counts, (~ref_ok).sum())
    cur_counts = np.append(cur_counts, (~cur_ok).sum())
    return ref_counts, cur_counts, [*(decode(v) for v in levels), MISSING_LABEL]


def _ks(reference: np.ndarray, current: np.ndarray, max_rows: int, seed: int = 0) -> tuple[float | None, float | None]:

    ref, cur = reference[np.isfinite(reference)], current[np.isfinite(current)]
    if len(ref) < 2 or len(cur) < 2:
        return None, None
    rng = np.random.default_rng(seed)
    if len(ref) > max_rows:
        ref = rng.choice(ref, max_rows, replace=False)
    if len(cur) > max_rows:
        cur = rng.choice(cur, max_rows, replace=False)
    result = ks_2samp(ref, cur)
    return float(result.statistic), float(result.pvalue)


def feature_drift(
    name: str,
    reference: np.ndarray,
    current: np.ndarray,
    thresholds: DriftThresholds,
    *,
    kind: str = "numeric",
    decode: Callable[[float], str] | None = None,
) -> FeatureDrift:
    """PSI (and KS for numeric columns) of one column; ``decode`` names category codes for the bins."""
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    if kind == "categorical":
        ref_counts, cur_counts, labels = _categorical_bins(reference, current, decode or _format_edge)
        ks_stat, ks_p = None, None
    else:
        ref_counts, cur_counts, labels = _numeric_bins(reference, current, thresholds.bins)
        ks_stat, ks_p = (
            _ks(reference, current, thresholds.ks_max_rows) if thresholds.ks_test else (None, None)
        )
    psi = psi_from_counts(ref_counts, cur_counts, thresholds.min_share)
    judged = len(current) >= thresholds.min_rows and len(reference) >= thresholds.min_rows
    ref_share = ref_counts / max(ref_counts.sum(), 1)
    cur_share = cur_counts / max(cur_counts.sum(), 1)
    bins = tuple(
        BinShare(label, float(r), float(c))
        for label, r, c in zip(labels, ref_share, cur_share, strict=True)
        # the missing bin is listed only when it holds something, to keep tables short
        if label != MISSING_LABEL or r > 0 or c > 0
    )
    return FeatureDrift(
        feature=name,
        kind=kind,
        psi=psi,
        level=thresholds.level(psi) if judged else "ok",
        reference_rows=len(reference),
        current_rows=len(current),
        reference_missing=float(np.isnan(reference).mean()) if len(reference) else 0.0,
        current_missing=float(np.isnan(current).mean()) if len(current) else 0.0,
        ks_statistic=ks_stat,
        ks_pvalue=ks_p,
        bins=bins,
    )


def matrix_drift(
    reference: np.ndarray,
    current: np.ndarray,
    feature_names: Sequence[str],
    thresholds: DriftThresholds,
    *,
    categorical: frozenset[str] = frozenset(),
    decoders: dict[str, Callable[[float], str]] | None = None,
    progress: bool = False,
) -> list[FeatureDrift]:
    """Drift of every column of two aligned feature matrices (same columns, same encoding)."""

    if reference.shape[1] != len(feature_names) or current.shape[1] != len(feature_names):
        raise ValueError(
            f"matrices have {reference.shape[1]} and {current.shape[1]} columns for {len(feature_names)} feature names"
        )
    decoders = decoders or {}
    out = []
    for j, name in enumerate(tqdm(feature_names, desc="drift", disable=not progress, leave=False)):
        kind = "categorical" if name in categorical else "numeric"
        out.append(
            feature_drift(name, reference[:, j], current[:, j], thresholds, kind=kind, decode=decoders.get(name))
        )
    return out
