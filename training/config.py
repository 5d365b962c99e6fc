"""Training configuration as data: LightGBM parameters, the time split, capacity and promotion rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from triage.entities import ENTITIES


class LightGBMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_leaves: int = 31
    learning_rate: float = 0.05
    max_rounds: int = 600
    early_stopping_rounds: int = 50
    min_child_samples: int = 40
    feature_fraction: float = 0.9
    bagging_fraction: float = 0.9
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    cat_smooth: float = 10.0
    num_threads: int = 0
    seed: int = 7

    def params(self) -> dict[str, Any]:
        params = self.model_dump(exclude={"max_rounds", "early_stopping_rounds", "seed"})
        params.update(
            objective="binary", metric=["average_precision", "auc"], verbosity=-1, seed=self.seed,
            deterministic=True, force_row_wise=True,
        )
        return params


class SplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    test_days: int = Field(21, ge=1)
    valid_days: int = Field(14, ge=1)
    gap_days: int = Field(14, ge=0, description="Label-delay gap skipped before the cutoff")


class TierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p0_precision: float = Field(0.8, gt=0, le=1, description="P0: cases at least this likely to be violations")
    p1_precision: float = Field(0.5, gt=0, le=1)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lightgbm: LightGBMConfig = LightGBMConfig()
    split: SplitConfig = SplitConfig()
    tiers: TierConfig = TierConfig()
    review_capacity_per_day: dict[str, int] = Field(
        default_factory=dict,
        description="k: cases investigators review per day, per entity type; default: the entity registry's",
    )
    promotion_metric: str = Field("pr_auc", description="Test-window metric a challenger must beat")
    promotion_margin: float = Field(0.0, ge=0, description="Required improvement over the champion")

    @field_validator("review_capacity_per_day")
    @classmethod
    def _known_entities(cls, capacity: dict[str, int]) -> dict[str, int]:
        for entity, k in capacity.items():
            ENTITIES.get(entity)
            if k < 1:
                raise ValueError(f"review capacity of {entity!r} must be at least 1, got {k}")
        return capacity

    def capacity(self, entity: str) -> int:
        """k for `entity`: this config's value, else the registry's default."""
        return self.review_capacity_per_day.get(entity, ENTITIES.get(entity).review_capacity_per_day)

    @classmethod
    def from_file(cls, path: Path) -> TrainConfig:
        return cls.model_validate(json.loads(path.read_text()))
