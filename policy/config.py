"""Configuration of the queue policy, the investigator capacity and the queue simulation.

Everything here is plain data: pydantic models with sensible defaults that load from a dict
(``Model.model_validate``) or from a JSON/YAML file (``Model.from_file``). No model reads the
environment or any global state.

Tiering rule (documented here because every policy shares it)
-------------------------------------------------------------
A case's tier is a property of the *case*, not of the ordering policy: it is the first tier, from
P0 down to P2, whose ``min_expected_loss`` (model probability × model exposure) and
``min_probability`` the case meets; everything else is P3. Absolute thresholds (rather than rank
under capacity) keep a case's tier and SLA stable when other cases arrive or staff changes, so an SLA
promise made at enqueue time is only revised when the case itself is re-scored. Because every policy
(FIFO, rules, oracle, ...) uses this same rule on the same model scores, SLA obligations are identical
across policies and SLA attainment is comparable.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from triage.entities import ENTITIES

TierName = Literal["P0", "P1", "P2", "P3"]

TIER_NAMES: tuple[TierName, ...] = ("P0", "P1", "P2", "P3")


def _load_mapping(path: str | Path) -> dict[str, Any]:
    """Read a JSON file, or a YAML file when PyYAML is installed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in {".yaml", ".yml"}:
        try:
            import yaml  # noqa: PLC0415 - an optional dependency, only needed for YAML configs
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(f"reading {path} needs PyYAML; use a JSON file or install pyyaml") from exc
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must contain a mapping at the top level, got {type(data).__name__}")
    return data


class _ConfigModel(BaseModel):
    """Base for config models: unknown keys are errors (catches typos in config files)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        """Load from a ``.json`` file, or ``.yaml``/``.yml`` when PyYAML is importable."""
        return cls.model_validate(_load_mapping(path))


class TierConfig(_ConfigModel):
    """One priority tier: its SLA and the thresholds a case must meet to be in it."""

    sla_hours: float = Field(gt=0, description="hours from enqueue to the SLA due time")
    min_expected_loss: float = Field(
        default=0.0, ge=0, description="minimum model probability × exposure for this tier"
    )
    min_probability: float = Field(default=0.0, ge=0, le=1, description="minimum model probability for this tier")


def _default_tiers() -> dict[TierName, TierConfig]:
    return {
        "P0": TierConfig(sla_hours=4, min_expected_loss=5_000),
        "P1": TierConfig(sla_hours=24, min_expected_loss=1_000),
        "P2": TierConfig(sla_hours=72, min_expected_loss=100),
        "P3": TierConfig(sla_hours=168),
    }


class UrgencyBoostConfig(_ConfigModel):
    """How priority rises as the SLA deadline nears.

    With ``u`` = elapsed time / tier SLA, the multiplier is
    ``1 + (max_boost - 1) * clip((u - start_fraction) / (1 - start_fraction), 0, 1) ** power``:
    1 until ``start_fraction`` of the SLA has elapsed, then rising smoothly to ``max_boost`` at the due
    time, and capped there once overdue (an overdue case should not starve everything else).
    """

    start_fraction: float = Field(default=0.5, ge=0, lt=1)
    max_boost: float = Field(default=3.0, ge=1)
    power: float = Field(default=2.0, gt=0)


class HandleTimeConfig(RootModel[dict[str, float]]):
    """Average investigator minutes to review one case, per entity type: a map that overrides the entity
    registry's defaults (`triage.entities`), e.g. ``{"group": 90}``."""

    model_config = ConfigDict(frozen=True)
    root: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Self:
        for name, minutes in self.root.items():
            ENTITIES.get(name)  # ValueError naming the known entity types
            if not minutes > 0:
                raise ValueError(f"handle minutes for {name!r} must be positive, got {minutes}")
        return self

    def minutes(self, entity_type: str) -> float:
        return float(self.root.get(entity_type, ENTITIES.get(entity_type).handle_minutes))

    def as_dict(self) -> dict[str, float]:
        return {name: self.minutes(name) for name in ENTITIES.names()}


class QueuePolicyConfig(_ConfigModel):
    """Tiers with SLAs, the urgency boost and handle times."""

    tiers: dict[TierName, TierConfig] = Field(default_factory=_default_tiers)
    urgency: UrgencyBoostConfig = Field(default_factory=UrgencyBoostConfig)
    handle_minutes: HandleTimeConfig = Field(default_factory=HandleTimeConfig)

    @model_validator(mode="after")
    def _check_tiers(self) -> Self:
        missing = [name for name in TIER_NAMES if name not in self.tiers]
        if missing:
            raise ValueError(f"tiers must define all of {TIER_NAMES}; missing {missing}")
        # Tiers are checked from P0 down, so thresholds must not increase towards P3,
        # and P3 is the catch-all.
        losses = [self.tiers[name].min_expected_loss for name in TIER_NAMES]
        if any(later > earlier for earlier, later in pairwise(losses)):
            raise ValueError("tier min_expected_loss must be non-increasing from P0 to P3")
        p3 = self.tiers["P3"]
        if p3.min_expected_loss != 0 or p3.min_probability != 0:
            raise ValueError("P3 is the catch-all tier: its thresholds must be 0")
        return self

    def sla_hours(self, tier: TierName) -> float:
        return self.tiers[tier].sla_hours


class CapacityConfig(_ConfigModel):
    """The investigator team. Shifts are assumed staggered so capacity is spread over the day."""

    investigators: int = Field(default=10, ge=0)
    shift_hours: float = Field(default=8.0, gt=0, le=24)
    productive_share: float = Field(default=0.75, gt=0, le=1, description="share of shift time spent reviewing cases")

    @property
    def review_hours_per_day(self) -> float:
        return self.investigators * self.shift_hours * self.productive_share

    @property
    def review_minutes_per_day(self) -> float:
        return self.review_hours_per_day * 60.0


def _default_half_lives() -> dict[str, float]:
    # Hours after which half of a violation's lifetime loss has already happened if nobody acts.
    # Scams cash out within a day or two (buyers pay, the seller disappears); prohibited items sell
    # and create legal exposure fast; counterfeits sell through stock over several days; misleading
    # listings and fake engagement do their harm slowly.
    return {
        "scam_seller": 24.0,
        # unsafe products (uncertified chargers, recalled goods) hurt buyers as soon as they ship
        "unsafe_product": 48.0,
        "prohibited_item": 48.0,
        "counterfeit": 96.0,
        "misleading_listing": 168.0,
        "fake_engagement": 168.0,
    }


class SimulationConfig(_ConfigModel):
    """Loss-accrual and timing assumptions of the queue simulation.

    Loss model: a violation's ``loss_if_missed`` is its whole-lifetime loss, which accrues while it
    waits. Reviewing it after waiting ``w`` hours prevents ``loss_if_missed * 0.5 ** (w / half_life)``;
    the rest has already happened. A case still open ``max_age_hours`` after it arrived expires: it
    drops out of the queue, its loss is incurred in full and it counts as an SLA breach.
    """

    step_hours: float = Field(default=1.0, gt=0, le=24, description="re-rank and review every step")
    max_age_hours: float = Field(default=336.0, gt=0)
    default_half_life_hours: float = Field(default=72.0, gt=0)
    half_life_hours: dict[str, float] = Field(default_factory=_default_half_lives)

    @model_validator(mode="after")
    def _check_half_lives(self) -> Self:
        bad = {k: v for k, v in self.half_life_hours.items() if not v > 0}
        if bad:
            raise ValueError(f"half lives must be positive: {bad}")
        return self
