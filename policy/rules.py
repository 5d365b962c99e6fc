"""A hand-written rules baseline, the kind of queue an ops team builds before it has a model.

Each rule adds points when it fires; cases are reviewed by points, and among equal points the larger
value at risk (listing ``price × stock``, else account ``gmv_90d``) first — ops teams look at big
items first too. The thresholds are the usual ones and live in ``RulesBaselineConfig``.

Raw columns read (all optional; a rule whose columns are absent simply does not fire; for a listing
case the seller's account columns are expected joined onto the row under the same names):

| column | rule |
|---|---|
| ``price``, ``reference_price`` | price far below reference (``price / reference_price < price_ratio_below``) |
| ``discount_pct`` | advertised discount at least ``deep_discount_at_least`` |
| ``title``, ``description`` or ``keyword_hits`` | suspicious keyword in the text (or a precomputed hit count) |
| ``verification``, ``account_age_days`` | new (< ``new_account_days``) and weakly verified seller |
| ``chargebacks_90d``, ``orders_90d`` | chargeback rate at least ``chargeback_rate_at_least`` |
| ``disputes_90d``, ``orders_90d`` | dispute rate at least ``dispute_rate_at_least`` |
| ``prior_violations`` | any confirmed violation before |
| ``price`` × ``stock`` or ``gmv_90d`` | tie-break: value at risk |
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from policy.config import QueuePolicyConfig
from policy.ranking import CaseTiming, PolicyScores, RankingPolicy

RULES_RAW_COLUMNS: tuple[str, ...] = (
    "price",
    "reference_price",
    "discount_pct",
    "title",
    "description",
    "keyword_hits",
    "verification",
    "account_age_days",
    "chargebacks_90d",
    "disputes_90d",
    "orders_90d",
    "prior_violations",
    "stock",
    "gmv_90d",
)


def _default_keywords() -> list[str]:
    return [
        "replica",
        "1:1",
        "aaa quality",
        "mirror quality",
        "inspired by",
        "high copy",
        "super fake",
        "whatsapp",
        "telegram",
        "wire transfer",
        "gift card",
        "dm for price",
        "no returns",
        "wholesale lot",
    ]


class RulesBaselineConfig(BaseModel):
    """Thresholds and points of the rules baseline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    price_ratio_below: float = Field(default=0.5, gt=0)
    price_points: float = 3.0
    deep_discount_at_least: float = Field(default=0.7, ge=0, le=1)
    discount_points: float = 1.0
    keywords: list[str] = Field(default_factory=_default_keywords)
    keyword_points: float = 2.0
    new_account_days: float = Field(default=30.0, ge=0)
    weak_verifications: list[str] = Field(default_factory=lambda: ["none", "email"])
    new_unverified_points: float = 2.0
    chargeback_rate_at_least: float = Field(default=0.02, ge=0)
    min_chargebacks: int = Field(default=2, ge=0)
    chargeback_points: float = 3.0
    dispute_rate_at_least: float = Field(default=0.05, ge=0)
    dispute_points: float = 1.0
    prior_violation_points: float = 2.0


def _column(cases: pd.DataFrame, name: str) -> np.ndarray | None:
    if name not in cases.columns:
        return None
    return pd.to_numeric(cases[name], errors="coerce").to_numpy(dtype=float)


class RulesBaselinePolicy(RankingPolicy):
    """Rule points first, value at risk second. See the module docstring for the columns."""

    name = "rules"

    def __init__(
        self,
        config: QueuePolicyConfig | None = None,
        rules: RulesBaselineConfig | None = None,
        *,
        urgency: bool = False,
    ) -> None:
        super().__init__(config, urgency=urgency)
        self.rules = rules if rules is not None else RulesBaselineConfig()

    @property
    def input_columns(self) -> tuple[str, ...]:
        return super().input_columns + RULES_RAW_COLUMNS

    def rule_hits(self, cases: pd.DataFrame) -> dict[str, np.ndarray]:
        """Boolean array per rule: which cases it fires on."""
        r = self.rules
        n = len(cases)
        hits: dict[str, np.ndarray] = {}
        # Comparisons with NaN are False, so missing values never fire a rule.
        with np.errstate(divide="ignore", invalid="ignore"):
            price, reference = _column(cases, "price"), _column(cases, "reference_price")
            if price is not None and reference is not None:
                hits["price far below reference"] = (reference > 0) & (price / reference < r.price_ratio_below)
            discount = _column(cases, "discount_pct")
            if discount is not None:
                hits["deep discount"] = discount >= r.deep_discount_at_least
            hits["suspicious keywords"] = self._keyword_hits(cases)
            age = _column(cases, "account_age_days")
            if age is not None and "verification" in cases.columns:
                weak = cases["verification"].isin(r.weak_verifications).to_numpy()
                hits["new unverified seller"] = weak & (age < r.new_account_days)
            orders = _column(cases, "orders_90d")
            chargebacks = _column(cases, "chargebacks_90d")
            if orders is not None and chargebacks is not None:
                rate = chargebacks / np.maximum(orders, 1.0)
                hits["chargebacks"] = (chargebacks >= r.min_chargebacks) & (rate >= r.chargeback_rate_at_least)
            disputes = _column(cases, "disputes_90d")
            if orders is not None and disputes is not None:
                hits["disputes"] = (disputes >= 1) & (disputes / np.maximum(orders, 1.0) >= r.dispute_rate_at_least)
            prior = _column(cases, "prior_violations")
            if prior is not None:
                hits["prior violations"] = prior >= 1
        return {name: np.asarray(hit, dtype=bool).reshape(n) for name, hit in hits.items()}

    def _keyword_hits(self, cases: pd.DataFrame) -> np.ndarray:
        counted = _column(cases, "keyword_hits")
        if counted is not None:
            return counted >= 1
        text_columns = [c for c in ("title", "description") if c in cases.columns]
        if not text_columns or not self.rules.keywords:
            return np.zeros(len(cases), dtype=bool)
        text = cases[text_columns[0]].fillna("").astype(str)
        for column in text_columns[1:]:
            text = text + " " + cases[column].fillna("").astype(str)
        pattern = "|".join(re.escape(k.lower()) for k in self.rules.keywords)
        return text.str.lower().str.contains(pattern, regex=True).to_numpy(dtype=bool)

    def _points(self, hits: dict[str, np.ndarray], n: int) -> np.ndarray:
        r = self.rules
        weights = {
            "price far below reference": r.price_points,
            "deep discount": r.discount_points,
            "suspicious keywords": r.keyword_points,
            "new unverified seller": r.new_unverified_points,
            "chargebacks": r.chargeback_points,
            "disputes": r.dispute_points,
            "prior violations": r.prior_violation_points,
        }
        points = np.zeros(n)
        for name, hit in hits.items():
            points += weights[name] * hit
        return points

    def _value_at_risk(self, cases: pd.DataFrame) -> np.ndarray:
        value = np.zeros(len(cases))
        price, stock, gmv = _column(cases, "price"), _column(cases, "stock"), _column(cases, "gmv_90d")
        if gmv is not None:
            value = np.where(np.isnan(gmv), value, gmv)
        if price is not None:
            listing_value = price * (stock if stock is not None else 1.0)
            value = np.where(np.isnan(listing_value), value, listing_value)
        return np.nan_to_num(np.clip(value, 0.0, None))

    def score(self, cases: pd.DataFrame, timing: CaseTiming) -> PolicyScores:
        n = len(cases)
        hits = self.rule_hits(cases)
        points = self._points(hits, n)
        value = self._value_at_risk(cases)
        # Value only breaks ties between equal points: its rank share in [0, 1) is scaled far below
        # any realistic difference between two point totals.
        value_share = pd.Series(value).rank(method="average").to_numpy() / (n + 1) if n else np.zeros(0)
        names = list(hits)
        matrix = np.column_stack([hits[k] for k in names]) if names else np.zeros((n, 0), dtype=bool)

        def explain(rows: np.ndarray) -> list[str]:
            out = []
            for row in rows:
                fired = [names[j] for j in np.flatnonzero(matrix[row])]
                what = ", ".join(fired) if fired else "no rule fired"
                out.append(f"rules score {points[row]:g} ({what}); value at risk {value[row]:,.0f}")
            return out

        return PolicyScores(value=points + 1e-6 * value_share, explain=explain)
