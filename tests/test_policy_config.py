"""Config models load from dicts and files and reject inconsistent settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from policy.config import CapacityConfig, QueuePolicyConfig, SimulationConfig


def test_defaults_are_sensible() -> None:
    config = QueuePolicyConfig()
    assert [config.sla_hours(t) for t in ("P0", "P1", "P2", "P3")] == [4, 24, 72, 168]
    assert config.handle_minutes.minutes("listing") < config.handle_minutes.minutes("account")
    assert CapacityConfig().review_hours_per_day == pytest.approx(10 * 8 * 0.75)


def test_model_validate_from_dict_overrides_only_what_is_given() -> None:
    config = QueuePolicyConfig.model_validate(
        {
            "tiers": {
                "P0": {"sla_hours": 2, "min_expected_loss": 10_000},
                "P1": {"sla_hours": 12, "min_expected_loss": 2_000},
                "P2": {"sla_hours": 48, "min_expected_loss": 200},
                "P3": {"sla_hours": 120},
            },
            "urgency": {"max_boost": 2.0},
            "handle_minutes": {"group": 90},
        }
    )
    assert config.sla_hours("P0") == 2
    assert config.urgency.max_boost == 2.0
    assert config.urgency.start_fraction == 0.5
    assert config.handle_minutes.minutes("group") == 90
    assert config.handle_minutes.minutes("listing") == 6


def test_from_json_file(tmp_path: Path) -> None:
    path = tmp_path / "queue.json"
    path.write_text(json.dumps({"urgency": {"max_boost": 4, "power": 1}}))
    config = QueuePolicyConfig.from_file(path)
    assert config.urgency.max_boost == 4
    assert config.urgency.power == 1
    capacity_path = tmp_path / "capacity.json"
    capacity_path.write_text(json.dumps({"investigators": 25, "productive_share": 0.6}))
    capacity = CapacityConfig.from_file(capacity_path)
    assert capacity.review_minutes_per_day == pytest.approx(25 * 8 * 0.6 * 60)


def test_from_yaml_file_when_pyyaml_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "simulation.yaml"
    path.write_text("step_hours: 2\nhalf_life_hours:\n  scam_seller: 12\n")
    simulation = SimulationConfig.from_file(path)
    assert simulation.step_hours == 2
    assert simulation.half_life_hours == {"scam_seller": 12}


@pytest.mark.parametrize(
    "bad",
    [
        {"tiers": {"P0": {"sla_hours": 4}}},  # missing tiers
        {
            "tiers": {
                "P0": {"sla_hours": 4, "min_expected_loss": 100},
                "P1": {"sla_hours": 24, "min_expected_loss": 1_000},  # higher than P0
                "P2": {"sla_hours": 72},
                "P3": {"sla_hours": 168},
            }
        },
        {
            "tiers": {
                "P0": {"sla_hours": 4, "min_expected_loss": 100},
                "P1": {"sla_hours": 24},
                "P2": {"sla_hours": 72},
                "P3": {"sla_hours": 168, "min_probability": 0.2},  # P3 must catch all
            }
        },
        {"urgency": {"max_boost": 0.5}},
        {"handle_minutes": {"listing": 0}},
        {"unknown_key": 1},
    ],
)
def test_invalid_configs_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        QueuePolicyConfig.model_validate(bad)


def test_capacity_rejects_bad_values() -> None:
    with pytest.raises(ValidationError):
        CapacityConfig(productive_share=1.5)
    with pytest.raises(ValidationError):
        CapacityConfig(investigators=-1)
