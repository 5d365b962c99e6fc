"""What acting rule hits do to cases (tier floors, harm classes, holds, routes) and the reason texts reviewers read."""

from __future__ import annotations

import numpy as np
import pytest

from policy.rule_effects import apply_rule_hits, reason_text
from policy.rule_engine import RuleSet
from tests.test_rule_engine import VARIABLES, columns, make_rule


def rule_set() -> RuleSet:
    return RuleSet.from_rules([
        make_rule(rule_id="thc-cart-cheap", reason="THC vape cartridge under 50 ({category}, {price})"),
        make_rule(rule_id="cheap-p0", condition="price < 5.0", action={"kind": "force_tier", "tier": "P0"},
                  reason="price {price:.2f} is absurd"),
        make_rule(rule_id="pharma", condition="category == 'health'",
                  action={"kind": "add_harm_class", "harm_class": "health_harm"}, reason="health product"),
        make_rule(rule_id="hold-vape", condition="category == 'vape'", action={"kind": "hold"},
                  reason="vape listing held"),
        make_rule(rule_id="route-vape", condition="category == 'vape'", action={"kind": "route", "skill": "vape"},
                  reason="vape specialist"),
        make_rule(rule_id="shadow-hold", mode="shadow", condition="price > 0.0", action={"kind": "hold"},
                  reason="never acts"),
    ], VARIABLES)


DATA = columns(price=[10.0, 3.0, 100.0, np.nan], prohibited_terms=[2.0, 0.0, 0.0, 1.0],
               category=["vape", "health", "vape", ""])


def test_acting_hits_raise_tiers_add_classes_hold_and_route() -> None:
    hits = rule_set().evaluate(DATA, 4)
    tiers = np.array(["P2", "P3", "P0", "P3"], dtype=object)
    holds = np.array([False, False, False, True])
    effects = apply_rule_hits(hits, DATA, tiers=tiers, holds=holds,
                              harm_classes=[{"fraud"}, set(), set(), set()])
    # floors: P2 -> P1 (thc), P3 -> P0 (cheap-p0), P0 stays P0 (a rule never lowers), no hit stays
    assert effects.tiers.tolist() == ["P1", "P0", "P0", "P3"]
    assert effects.harm_classes == (frozenset({"fraud"}), frozenset({"health_harm"}), frozenset(), frozenset())
    assert effects.holds.tolist() == [True, False, True, True]  # the shadow hold acts nowhere
    assert effects.routes == (frozenset({"vape"}), frozenset(), frozenset({"vape"}), frozenset())
    # inputs are not changed
    assert tiers.tolist() == ["P2", "P3", "P0", "P3"] and holds.tolist() == [False, False, False, True]


def test_reason_texts_name_rule_and_version_with_record_values() -> None:
    effects = apply_rule_hits(rule_set().evaluate(DATA, 4), DATA)
    assert effects.reasons[0] == (
        "Rule `thc-cart-cheap` v3: THC vape cartridge under 50 (vape, 10)",
        "Rule `hold-vape` v3: vape listing held",
        "Rule `route-vape` v3: vape specialist",
    )
    assert effects.reasons[1] == ("Rule `cheap-p0` v3: price 3.00 is absurd", "Rule `pharma` v3: health product")
    assert effects.reasons[3] == ()  # only the shadow rule hit: no reason, no effect


@pytest.mark.parametrize(
    ("value", "text"),
    [(49.99, "49.99"), (50.0, "50"), (0.0123, "0.0123"), (np.nan, "unknown"), (None, "unknown"), ("", "unknown"),
     ("x" * 500, "x" * 119 + "…"), ("{price}", "{price}")],
)
def test_placeholder_values(value: object, text: str) -> None:
    rule = make_rule(reason="value {title}")
    assert reason_text(rule, {"title": value}) == f"Rule `thc-cart-cheap` v3: value {text}"


def test_literal_braces_and_wrong_lengths() -> None:
    assert reason_text(make_rule(reason="{{literal}} {price}"), {"price": 2.5}) == (
        "Rule `thc-cart-cheap` v3: {literal} 2.50")
    hits = rule_set().evaluate(DATA, 4)
    with pytest.raises(ValueError, match="tiers"):
        apply_rule_hits(hits, DATA, tiers=["P1"])
    with pytest.raises(ValueError, match="unknown tiers"):
        apply_rule_hits(hits, DATA, tiers=["P1", "P1", "P9", "P1"])
    with pytest.raises(ValueError, match="routes"):
        apply_rule_hits(hits, DATA, routes=[set()])
