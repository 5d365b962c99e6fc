"""The entity registry is the one declaration of entity types: settings, training config, policy, the API's
routes and request models, and the CLI's choices all derive from it, and a new entity type registered at run
time is accepted everywhere without another declaration."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.app import app
from features import feature_set_for
from policy.config import HandleTimeConfig, QueuePolicyConfig
from serving.schemas import QUEUED_MODELS, RECORD_MODELS, score_route
from training.config import TrainConfig
from triage.entities import ENTITIES, EntitySpec, check_entity_type, group_types
from triage.settings import TriageSettings

NEW = EntitySpec(name="probe_type", plural="probe_types", description="A probe (test only)",
                 features="features.listing:LISTING_FEATURE_SET", review_capacity_per_day=70, handle_minutes=4.0)


def test_the_built_in_entity_types() -> None:
    assert ENTITIES.names() == ("listing", "account", "group")
    assert ENTITIES.scored_names() == ("listing", "account")
    assert group_types() == ("group",) and ENTITIES.group_of("account") == ENTITIES.get("group")
    assert ENTITIES.plural_to_name("accounts") == "account"
    with pytest.raises(ValueError, match="unknown entity 'robot'"):
        check_entity_type("robot")
    with pytest.raises(ValueError, match="not scored by a model of its own"):
        ENTITIES.scored("group")


def test_a_name_cannot_be_declared_twice_differently() -> None:
    with pytest.raises(ValueError, match="another declaration"):
        ENTITIES.register(EntitySpec(name="listing", plural="listings", description="other",
                                     features="features.account:ACCOUNT_FEATURE_SET"))
    assert ENTITIES.register(ENTITIES.get("listing")) is ENTITIES.get("listing")  # the same one again: a no-op
    with pytest.raises(ValueError, match="unknown members 'shop'"):
        ENTITIES.register(EntitySpec(name="widget", plural="widgets", description="x", members="shop"))


def test_settings_name_models_per_entity_from_one_map(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TriageSettings().model_name_map() == {"listing": "triage-listing-scorer",
                                                "account": "triage-account-scorer"}
    monkeypatch.setenv("TRIAGE_MODEL_NAMES__ACCOUNT", "acct-v2")
    assert TriageSettings().model_name("account") == "acct-v2"
    monkeypatch.setenv("TRIAGE_MODEL_NAMES", '{"listing": "lst"}')
    monkeypatch.delenv("TRIAGE_MODEL_NAMES__ACCOUNT")
    assert TriageSettings().model_name_map() == {"listing": "lst", "account": "triage-account-scorer"}
    with pytest.raises(ValueError, match="unknown entity 'robot'"):
        TriageSettings(model_names={"robot": "x"})


def test_capacity_and_handle_time_default_to_the_registry() -> None:
    assert TrainConfig().capacity("listing") == 200 and TrainConfig().capacity("account") == 40
    assert TrainConfig(review_capacity_per_day={"account": 55}).capacity("account") == 55
    handle = QueuePolicyConfig().handle_minutes
    assert handle.as_dict() == {"listing": 6.0, "account": 20.0, "group": 60.0}
    assert QueuePolicyConfig.model_validate({"handle_minutes": {"group": 90}}).handle_minutes.minutes("group") == 90
    with pytest.raises(ValueError, match="unknown entity"):
        HandleTimeConfig({"robot": 3.0})
    with pytest.raises(ValueError, match="unknown entity"):
        TrainConfig(review_capacity_per_day={"robot": 3})


def test_a_registered_entity_type_is_accepted_without_another_declaration() -> None:
    with ENTITIES.temporarily(NEW):
        assert TriageSettings().model_name("probe_type") == "triage-probe_type-scorer"
        assert TrainConfig().capacity("probe_type") == 70
        assert QueuePolicyConfig().handle_minutes.minutes("probe_type") == 4.0
        assert feature_set_for("probe_type").entity == "listing"  # borrowed feature module, test only
        assert check_entity_type("probe_type") == "probe_type"
    assert "probe_type" not in ENTITIES


def test_the_api_routes_and_request_models_come_from_the_registry() -> None:
    from serving.service import TriageService

    apis = TriageService.apis  # type: ignore[attr-defined]
    for entity in ENTITIES.scored_names():
        plural = ENTITIES.scored(entity).plural
        assert score_route(entity) == f"/score_{plural}"
        assert score_route(entity).lstrip("/") in apis
        schema = apis[score_route(entity).lstrip("/")].input_spec.model_json_schema()
        assert plural in schema["required"]
        fields = set(RECORD_MODELS[entity].model_fields)
        declared = {raw.name for raw in feature_set_for(entity).inputs}
        computed = {raw.name for raw in feature_set_for(entity).inputs if raw.computed}
        assert fields == declared - computed
        assert set(QUEUED_MODELS[entity].model_fields) == {"record", "enqueued_at"}
    prioritize = apis["prioritize"].input_spec.model_json_schema()["properties"]
    assert {ENTITIES.scored(e).plural for e in ENTITIES.scored_names()} <= set(prioritize)


def test_the_cli_offers_the_registrys_entity_types() -> None:
    result = CliRunner().invoke(app, ["evaluate", "--entity", "robot"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --entity must be 'listing' or 'account', got 'robot'"
    help_text = CliRunner().invoke(app, ["evaluate", "--help"]).output
    assert "listing or account" in help_text
