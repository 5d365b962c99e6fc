"""Policy rules: the Rule data, compiling CEL conditions (and what is refused, with where), evaluating rule sets on
columns with missing values, and the acting/shadow split."""

from __future__ import annotations

from typing import Any

import cel
import numpy as np
import pytest
from pydantic import ValidationError

from policy.rule_engine import RuleCompileError, RuleSet, VariableKind, compile_rule
from policy.rulebook import ForceTier, Hold, Route, Rule, RuleMode

VARIABLES = {
    "price": VariableKind.NUMBER,
    "prohibited_terms": VariableKind.NUMBER,
    "account_age_days": VariableKind.NUMBER,
    "category": VariableKind.STRING,
    "title": VariableKind.STRING,
}


def make_rule(**overrides: Any) -> Rule:
    fields: dict[str, Any] = {
        "rule_id": "thc-cart-cheap",
        "version": 3,
        "entity_type": "listing",
        "name": "Cheap THC cartridges",
        "condition": "price < 50.0 && prohibited_terms >= 1.0 && category in ['health', 'vape']",
        "action": {"kind": "force_tier", "tier": "P1"},
        "mode": "active",
        "reason": "THC vape cartridge under 50 (price {price})",
    }
    fields.update(overrides)
    return Rule.model_validate(fields)


def columns(**values: list[Any]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, column in values.items():
        kind = VARIABLES[name]
        out[name] = np.array(column, dtype=np.float64 if kind is VariableKind.NUMBER else object)
    return out


# --- the Rule data ---------------------------------------------------------------------------------------------

def test_rule_parses_actions_and_is_frozen() -> None:
    rule = make_rule()
    assert rule.action == ForceTier(tier="P1")
    assert make_rule(action={"kind": "hold"}).action == Hold()
    assert make_rule(action={"kind": "route", "skill": "pharma"}).action == Route(skill="pharma")
    assert rule.mode is RuleMode.ACTIVE
    assert make_rule(mode="shadow").label == "thc-cart-cheap v3"
    with pytest.raises(ValidationError):
        rule.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"rule_id": "Has Spaces"}, "rule_id"),
        ({"rule_id": "trailing-"}, "rule_id"),
        ({"action": {"kind": "force_tier", "tier": "P9"}}, "action"),
        ({"action": {"kind": "route"}}, "action"),
        ({"action": {"kind": "explode"}}, "action"),
        ({"mode": "live"}, "mode"),
        ({"condition": "   "}, "condition"),
        ({"reason": "price {price.__class__}"}, "reason"),
        ({"reason": "price {price!r}"}, "reason"),
        ({"reason": "unbalanced {price"}, "reason"),
        ({"name": "nul\x00"}, "name"),
        ({"colour": "red"}, "colour"),
        ({"version": -1}, "version"),
    ],
)
def test_rule_refuses_bad_fields_naming_them(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as error:
        make_rule(**overrides)
    assert field in {str(part) for e in error.value.errors() for part in e["loc"]}


def test_definition_hash_ignores_version_and_mode_only() -> None:
    rule = make_rule()
    assert rule.definition_hash() == make_rule(version=9, mode="shadow").definition_hash()
    assert rule.definition_hash() != make_rule(condition="price < 40.0").definition_hash()
    assert "version" not in rule.definition() and "mode" not in rule.definition()


# --- compiling ---------------------------------------------------------------------------------------------------

def test_parse_error_names_rule_and_position() -> None:
    with pytest.raises(RuleCompileError) as error:
        compile_rule(make_rule(condition="price < 50.0 &&\n  category =="), VARIABLES)
    assert error.value.rule_id == "thc-cart-cheap"
    assert (error.value.line, error.value.column) == (2, 14)
    assert "thc-cart-cheap v3" in str(error.value) and "does not parse" in str(error.value)


def test_unknown_name_is_refused_with_its_position_and_a_suggestion() -> None:
    with pytest.raises(RuleCompileError) as error:
        compile_rule(make_rule(condition="category == 'prce' && prce < 50.0"), VARIABLES)
    assert error.value.name == "prce"
    # the 'prce' inside the string literal is not the use
    assert (error.value.line, error.value.column) == (1, 23)
    assert "did you mean 'price'" in str(error.value)


def test_comprehension_variables_are_not_unknown_names() -> None:
    compiled = compile_rule(make_rule(condition="[10.0, 20.0].exists(limit, price < limit)"), VARIABLES)
    assert compiled.variables == ("price",)


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        ("price * 2 > 100.0", "type error"),  # double * int
        ("category > 3.0", "type error"),
        ("title.lowerAscii() == 'x'", "type error"),  # not a function of this CEL library
        ("price", "must be true or false"),
        ("price > 1.0 ? 'a' : 'b'", "must be true or false"),
        ("price.matches('1')", "must be true or false"),
        ("title.matches('(unclosed')", "invalid regular expression"),
    ],
)
def test_conditions_wrong_for_every_row_are_refused(condition: str, problem: str) -> None:
    with pytest.raises(RuleCompileError) as error:
        compile_rule(make_rule(condition=condition), VARIABLES)
    assert problem in str(error.value)


def test_reason_placeholders_must_be_known_and_fit_their_kind() -> None:
    with pytest.raises(RuleCompileError, match=r"\{seller\}"):
        compile_rule(make_rule(reason="seller {seller}"), VARIABLES)
    with pytest.raises(RuleCompileError, match="does not fit a string"):
        compile_rule(make_rule(reason="category {category:.2f}"), VARIABLES)
    compile_rule(make_rule(reason="price {price:.2f} in {category}"), VARIABLES)


def test_variable_declarations_must_be_cel_identifiers() -> None:
    with pytest.raises(ValueError, match="not a CEL identifier"):
        compile_rule(make_rule(), {**VARIABLES, "in": VariableKind.NUMBER})
    with pytest.raises(ValueError):
        compile_rule(make_rule(), {**VARIABLES, "price": "float"})


# --- evaluating ----------------------------------------------------------------------------------------------------

def test_evaluate_hits_rows_and_splits_acting_from_shadow() -> None:
    rules = [
        make_rule(),
        make_rule(rule_id="new-seller", mode="shadow", condition="account_age_days < 7.0",
                  action={"kind": "route", "skill": "new-sellers"}, reason="account {account_age_days} days old"),
    ]
    rule_set = RuleSet.from_rules(rules, VARIABLES)
    data = columns(price=[10.0, 80.0, 20.0], prohibited_terms=[2.0, 3.0, 0.0],
                   category=["vape", "vape", "health"], account_age_days=[3.0, 100.0, 1.0])
    hits = rule_set.evaluate(data, 3)
    assert hits.matrix.tolist() == [[True, True], [False, False], [False, True]]
    assert [h.rule_id for h in hits.acting(0)] == ["thc-cart-cheap"]
    assert [h.rule_id for h in hits.shadow(0)] == ["new-seller"]
    assert hits.acting(2) == [] and [h.rule_id for h in hits.shadow(2)] == ["new-seller"]
    assert hits.hit_counts() == {"thc-cart-cheap": 1, "new-seller": 2}
    assert [(h.row, h.rule_id, h.version) for h in hits.hits(RuleMode.SHADOW)] == [
        (0, "new-seller", 3), (2, "new-seller", 3)]
    assert hits.errors == {"thc-cart-cheap": 0, "new-seller": 0}


def test_missing_values_are_null_never_hit_and_are_counted() -> None:
    rule_set = RuleSet.from_rules([
        make_rule(rule_id="cheap", condition="price < 50.0"),
        make_rule(rule_id="no-price", condition="price == null"),
        make_rule(rule_id="guarded", condition="price != null && price < 50.0"),
        make_rule(rule_id="in-list", condition="category in ['vape']"),
        make_rule(rule_id="no-category", condition="category == null"),
        make_rule(rule_id="title-thc", condition="title.contains('thc')"),
        make_rule(rule_id="negated", condition="!(price < 50.0)"),
    ], VARIABLES)
    data = columns(price=[np.nan, 10.0], category=["", "vape"], title=["", "thc cart"],
                   prohibited_terms=[1.0, 1.0])
    hits = rule_set.evaluate(data, 2)
    by_rule = {rule.rule_id: hits.rule_column(rule.rule_id).tolist() for rule in rule_set.rules}
    assert by_rule == {
        "cheap": [False, True], "no-price": [True, False], "guarded": [False, True], "in-list": [False, True],
        "no-category": [True, False], "title-thc": [False, True], "negated": [False, False],
    }
    # a comparison or a function on null is a non-hit counted as missing; the guarded rule absorbs it
    assert hits.missing == {"cheap": 1, "no-price": 0, "guarded": 0, "in-list": 0, "no-category": 0,
                            "title-thc": 1, "negated": 1}
    assert set(hits.errors.values()) == {0}


def test_value_errors_are_counted_never_raised() -> None:
    rule_set = RuleSet.from_rules([make_rule(rule_id="numeric-category", condition="int(category) > 3")],
                                  VARIABLES)
    hits = rule_set.evaluate(columns(category=["12", "vape", "2"]), 3)
    assert hits.rule_column("numeric-category").tolist() == [True, False, False]
    assert hits.errors == {"numeric-category": 1} and hits.missing == {"numeric-category": 0}


def test_hostile_strings_never_raise() -> None:
    rng = np.random.default_rng(7)
    alphabet = [*"aZ09 '\"\\{}%\x01é漢🙂", "thc", "replica"]
    texts = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 300)))) for _ in range(200)]
    texts.append("a" * 100_000)
    rule_set = RuleSet.from_rules([
        make_rule(rule_id="re", condition="title.matches('(?i)(a+)+$|replica')"),
        make_rule(rule_id="starts", condition="title.startsWith('{price}') || size(title) > 250"),
    ], VARIABLES)
    hits = rule_set.evaluate(columns(title=texts), len(texts))
    assert hits.matrix.shape == (len(texts), 2)
    assert hits.rule_column("re")[-1]  # 100k "a": RE2 answers in linear time
    assert hits.errors == {"re": 0, "starts": 0}


@pytest.mark.parametrize("pattern", ["thc", "(?i)REPLICA|1:1", "^new", "cart$", r"\d{2,}", "[", "a.c", "x*"])
def test_compiled_regex_agrees_with_cel_matches(pattern: str) -> None:
    texts = ["thc cart", "Replica bag", "1:1 copy", "new shoes", "vape cart", "model 42", "abc", "", "ac"]
    condition = f"title.matches({pattern!r})"
    try:
        reference = [cel.compile(condition).execute({"title": t}) for t in texts]
    except RuntimeError:
        with pytest.raises(RuleCompileError, match="invalid regular expression"):
            compile_rule(make_rule(condition=condition), VARIABLES)
        return
    rule_set = RuleSet.from_rules([make_rule(condition=condition)], VARIABLES)
    compiled = rule_set.compiled[0]
    assert compiled.functions, "a literal pattern is compiled once"
    hits = rule_set.evaluate(columns(title=texts), len(texts))
    # "" is a missing string (null), which CEL's matches() would see as a string: compare the present ones
    present = [i for i, t in enumerate(texts) if t]
    assert [bool(hits.matrix[i, 0]) for i in present] == [reference[i] for i in present]
    assert hits.missing["thc-cart-cheap"] == 1


def test_matches_inside_a_string_literal_is_left_alone() -> None:
    rule = make_rule(condition="title == \"x.matches('y')\" || title.matches('thc')")
    compiled = compile_rule(rule, VARIABLES)
    assert len(compiled.functions) == 1
    hits = RuleSet([compiled], VARIABLES).evaluate(columns(title=["x.matches('y')", "thc", "no"]), 3)
    assert hits.matrix[:, 0].tolist() == [True, True, False]


def test_evaluate_refuses_wiring_errors() -> None:
    rule_set = RuleSet.from_rules([make_rule()], VARIABLES)
    with pytest.raises(ValueError, match="prohibited_terms"):
        rule_set.evaluate(columns(price=[1.0], category=["vape"]), 1)
    with pytest.raises(ValueError, match="shape"):
        rule_set.evaluate(columns(price=[1.0, 2.0], category=["vape"], prohibited_terms=[1.0]), 1)
    with pytest.raises(ValueError, match="declared a number"):
        rule_set.evaluate({"price": np.array(["a"], dtype=object), "category": np.array(["vape"], dtype=object),
                           "prohibited_terms": np.array([1.0])}, 1)


def test_rule_sets_refuse_retired_and_duplicate_rules() -> None:
    with pytest.raises(ValueError, match="retired"):
        RuleSet.from_rules([make_rule(mode="retired")], VARIABLES)
    with pytest.raises(ValueError, match="twice"):
        RuleSet.from_rules([make_rule(), make_rule(mode="shadow")], VARIABLES)


def test_compile_valid_keeps_the_rules_that_compile() -> None:
    good = make_rule(rule_id="good")
    bad = make_rule(rule_id="renamed-feature", condition="old_feature > 1.0")
    rule_set, refused = RuleSet.compile_valid([good, bad], VARIABLES)
    assert [r.rule_id for r in rule_set.rules] == ["good"]
    assert [e.rule_id for e in refused] == ["renamed-feature"] and refused[0].name == "old_feature"


def test_empty_sets_and_no_rows() -> None:
    assert RuleSet.from_rules([], VARIABLES).evaluate({}, 4).matrix.shape == (4, 0)
    hits = RuleSet.from_rules([make_rule()], VARIABLES).evaluate(columns(price=[], category=[],
                                                                          prohibited_terms=[]), 0)
    assert hits.matrix.shape == (0, 1) and list(hits.hits()) == []


def test_a_ratio_is_not_refused_for_what_zero_over_zero_gives() -> None:
    # probing with 0.0 everywhere makes price / reference_price NaN, which CEL cannot compare: not a type error
    variables = {**VARIABLES, "reference_price": VariableKind.NUMBER}
    rule = make_rule(condition="account_age_days != null && price / reference_price < 0.3")
    hits = RuleSet.from_rules([rule], variables).evaluate(
        {"account_age_days": np.array([1.0, 2.0, 3.0]), "price": np.array([10.0, 0.0, 90.0]),
         "reference_price": np.array([100.0, 0.0, 100.0])}, 3)
    assert hits.matrix[:, 0].tolist() == [True, False, False]
    assert hits.errors == {"thc-cart-cheap": 1}  # the 0 / 0 row
