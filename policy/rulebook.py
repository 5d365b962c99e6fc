"""Policy rules as data: a hard rule that risk teams keep beside the model, its action and its mode.

A ``Rule`` is frozen, validated configuration (like ``QueuePolicyConfig``): an id, a CEL ``condition`` over the
record's raw fields and model features, one ``action`` and a ``mode``. Compiling and evaluating rules lives in
``policy.rule_engine``, applying their hits to cases in ``policy.rule_effects``, backtesting in
``policy.rule_backtest`` and their versioned storage in ``stores.rules``. See docs/rules.md.

Modes:

- ``shadow``: evaluated, logged and counted, never acting (every rule starts here);
- ``active``: its hits act on the case (tier floor, harm class, hold, routing);
- ``retired``: kept in the history, never evaluated.
"""

from __future__ import annotations

import functools
import hashlib
import json
import string
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from policy.config import TierName

RULE_ID_LENGTH = 64
CODE_LENGTH = 64
RULE_NAME_LENGTH = 128
DESCRIPTION_LENGTH = 2000
CONDITION_LENGTH = 4000
REASON_LENGTH = 500

# A rule id is a slug: what a URL, a CLI argument and a log line can carry without quoting.
RuleId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=RULE_ID_LENGTH, pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$"),
]
# Entity types, harm classes and reviewer skills: lower-case codes (validated against registries at wiring).
Code = Annotated[
    str, StringConstraints(min_length=1, max_length=CODE_LENGTH, pattern=r"^[a-z0-9][a-z0-9_\-]*$")
]


class RuleMode(StrEnum):
    SHADOW = "shadow"
    ACTIVE = "active"
    RETIRED = "retired"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ForceTier(_Frozen):
    """The case's tier is at least ``tier`` (a floor: a rule never makes a case less urgent than the model)."""

    kind: Literal["force_tier"] = "force_tier"
    tier: TierName


class AddHarmClass(_Frozen):
    """The case carries ``harm_class`` (beside whatever the model's reasons suggest)."""

    kind: Literal["add_harm_class"] = "add_harm_class"
    harm_class: Code


class Hold(_Frozen):
    """Auto-hold the listing pending review: an event must reach the marketplace (``stores.outbox``)."""

    kind: Literal["hold"] = "hold"


class Route(_Frozen):
    """Route the case to reviewers with ``skill``."""

    kind: Literal["route"] = "route"
    skill: Code


RuleAction = Annotated[ForceTier | AddHarmClass | Hold | Route, Field(discriminator="kind")]


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it here, naming the field, rather than fail in the store
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class Rule(_Frozen):
    """One policy rule. ``version`` is assigned by ``stores.rules.RuleStore`` (0: a draft not saved yet)."""

    rule_id: RuleId
    version: int = Field(default=0, ge=0)
    entity_type: Code
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=RULE_NAME_LENGTH)]
    description: Annotated[str, StringConstraints(max_length=DESCRIPTION_LENGTH)] = ""
    condition: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=CONDITION_LENGTH)]
    action: RuleAction
    mode: RuleMode = RuleMode.SHADOW
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=REASON_LENGTH)]

    @field_validator("name", "description", "condition", "reason")
    @classmethod
    def _text_without_nul(cls, value: str) -> str:
        return _no_nul(value)

    @field_validator("reason")
    @classmethod
    def _reason_placeholders(cls, value: str) -> str:
        reason_placeholders(value)  # raises on a malformed template; names are checked when compiling
        return value

    def definition(self) -> dict[str, Any]:
        """What the rule says, without its version and mode: what a new version may change."""
        return self.model_dump(mode="json", exclude={"version", "mode"})

    def definition_hash(self) -> str:
        """sha256 of the canonical JSON of ``definition()``: equal for equal definitions."""
        canonical = json.dumps(self.definition(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def label(self) -> str:
        """How a reviewer and a log line name this rule: ``thc-cart-cheap v3``."""
        return f"{self.rule_id} v{self.version}"


@functools.lru_cache(maxsize=4096)  # pure, and called for every acting hit: parse each template once
def reason_placeholders(template: str) -> tuple[tuple[str, str], ...]:
    """``(name, format_spec)`` of each ``{name}`` / ``{name:spec}`` in a reason template, in order.

    Only plain names are allowed: ``{a.b}``, ``{a[0]}`` and ``{a!r}`` would let a template reach into
    Python objects (``{x.__class__}``), so they are refused. ``{{`` and ``}}`` are literal braces.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"reason template is malformed: {error}") from None
    found: list[tuple[str, str]] = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"reason placeholder {{{name}}} must be a plain field name")
        if conversion is not None:
            raise ValueError(f"reason placeholder {{{name}!{conversion}}}: conversions are not allowed")
        if "{" in (spec or ""):
            raise ValueError(f"reason placeholder {{{name}:{spec}}}: nested placeholders are not allowed")
        found.append((name, spec or ""))
    return tuple(found)
