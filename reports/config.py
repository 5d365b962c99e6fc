"""Report thresholds and knobs as data (frozen pydantic models, loadable from JSON like the policy config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftThresholds(_Frozen):
    """Population stability index (PSI) levels and binning.

    The usual reading of PSI: below 0.1 no meaningful shift, 0.1–0.25 a moderate shift worth a look,
    above 0.25 a major shift. KS p-values are reported but never alert on their own: with tens of thousands
    of rows every trivial shift is "significant".
    """

    psi_warn: float = Field(default=0.1, gt=0)
    psi_alert: float = Field(default=0.25, gt=0)
    bins: int = Field(default=10, ge=2, le=100, description="quantile bins taken from the reference")
    # A bin empty on one side would make PSI infinite; this floor on each share keeps it finite but large.
    min_share: float = Field(default=1e-4, gt=0, lt=0.01)
    ks_test: bool = True
    ks_max_rows: int = Field(default=50_000, ge=100, description="subsample for the KS test (cost only)")
    min_rows: int = Field(default=50, ge=1, description="fewer current rows than this: PSI is not judged")

    @model_validator(mode="after")
    def _ordered(self) -> DriftThresholds:
        if self.psi_alert < self.psi_warn:
            raise ValueError("psi_alert must be >= psi_warn")
        return self

    def level(self, psi: float) -> str:
        if psi >= self.psi_alert:
            return "alert"
        if psi >= self.psi_warn:
            return "warn"
        return "ok"


class OutcomeThresholds(_Frozen):
    """When reviewer outcomes and queue timeliness raise an alert."""

    # latest week's precision in a tier against that tier's precision over the earlier weeks (absolute drop)
    precision_drop_warn: float = Field(default=0.10, gt=0, le=1)
    precision_drop_alert: float = Field(default=0.20, gt=0, le=1)
    sla_warn: float = Field(default=0.90, ge=0, le=1, description="SLA attainment below this warns")
    sla_alert: float = Field(default=0.75, ge=0, le=1, description="SLA attainment below this alerts")
    # too few decided cases make a precision or attainment figure noise, not a finding
    min_cases: int = Field(default=20, ge=1)
    review_tiers: tuple[str, ...] = ("P0", "P1", "P2")

    @model_validator(mode="after")
    def _ordered(self) -> OutcomeThresholds:
        if self.precision_drop_alert < self.precision_drop_warn:
            raise ValueError("precision_drop_alert must be >= precision_drop_warn")
        if self.sla_alert > self.sla_warn:
            raise ValueError("sla_alert must be <= sla_warn")
        return self


class MonitorConfig(_Frozen):
    drift: DriftThresholds = Field(default_factory=DriftThresholds)
    outcomes: OutcomeThresholds = Field(default_factory=OutcomeThresholds)


class RcaConfig(_Frozen):
    """Segment mining and candidate-rule learning."""

    min_support: int = Field(default=30, ge=1, description="minimum cases in a segment or rule leaf")
    min_violations: int = Field(default=5, ge=1, description="minimum confirmed violations in a segment")
    top_segments: int = Field(default=15, ge=1)
    pairs: bool = True
    max_levels_per_column: int = Field(default=30, ge=2, description="rarer values are pooled as 'other'")
    tree_max_depth: int = Field(default=3, ge=1, le=4)
    # fit the rule learner on the earliest share of the window, backtest on the rest (a forward split, so a
    # rule is judged on cases that arrived after the ones it was learnt from)
    fit_fraction: float = Field(default=0.6, gt=0.1, lt=0.95)
    min_rule_lift: float = Field(default=2.0, ge=1, description="keep leaves at least this × the base rate")
    max_rules: int = Field(default=8, ge=1)
    top_drivers: int = Field(default=8, ge=1)
