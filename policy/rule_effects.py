"""What acting rule hits do to cases, as a pure function of the hits and the per-row case state.

- ``force_tier``: the tier is at least the forced one (P0 is the most urgent); several forced tiers: the most
  urgent wins; a rule never lowers the model's tier.
- ``add_harm_class``: the harm class is added to the row's set.
- ``hold``: the row is held pending review (the caller writes the hold event to the outbox in the same
  transaction as the case).
- ``route``: the skill is added to the row's routes.

Every acting hit also gives the reviewer a reason: ``Rule `thc-cart-cheap` v3: THC vape cartridge under 49.99``,
the rule's reason template filled with the record's values. Shadow hits change nothing and give no reason.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from policy.config import TIER_NAMES
from policy.rule_engine import RuleHits
from policy.rulebook import AddHarmClass, ForceTier, Hold, Route, Rule, RuleMode, reason_placeholders

MISSING_TEXT = "unknown"
# A placeholder shows at most this much of a string value (titles can be long; the reason stays one line).
MAX_PLACEHOLDER_CHARS = 120
_TIER_RANK = {name: rank for rank, name in enumerate(TIER_NAMES)}


@dataclass(frozen=True)
class RuleEffects:
    """Per-row case state after the acting hits (new arrays; the inputs are not changed)."""

    tiers: npt.NDArray[np.object_]  # P0..P3
    harm_classes: tuple[frozenset[str], ...]
    holds: npt.NDArray[np.bool_]
    routes: tuple[frozenset[str], ...]
    reasons: tuple[tuple[str, ...], ...]  # reviewer-facing texts of the acting hits, in rule order


def _placeholder_text(value: object, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return MISSING_TEXT
    if spec:
        try:
            return format(value, spec)
        except (TypeError, ValueError):
            pass  # compile_rule checked the spec against the declared kind; a value of another type shows as is
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"
    text = str(value)
    return text if len(text) <= MAX_PLACEHOLDER_CHARS else text[: MAX_PLACEHOLDER_CHARS - 1] + "…"


def reason_text(rule: Rule, values: Mapping[str, object]) -> str:
    """``Rule `<id>` v<version>: <reason>`` with ``{field}`` placeholders filled from one record's ``values``."""
    reason_placeholders(rule.reason)  # plain names only (validated on the Rule too)
    parts: list[str] = []
    for literal, name, spec, _conversion in string.Formatter().parse(rule.reason):
        parts.append(literal)
        if name is not None:
            parts.append(_placeholder_text(values.get(name), spec or ""))
    return f"Rule `{rule.rule_id}` v{rule.version}: {''.join(parts)}"


def _row_values(columns: Mapping[str, npt.ArrayLike], names: Sequence[str], row: int) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in names:
        if name in columns:
            value = np.asarray(columns[name])[row]
            out[name] = value.item() if isinstance(value, np.generic) else value
    return out


def apply_rule_hits(
    hits: RuleHits,
    columns: Mapping[str, npt.ArrayLike],
    *,
    tiers: Sequence[str] | npt.NDArray[np.object_] | None = None,
    harm_classes: Sequence[frozenset[str] | set[str] | tuple[str, ...]] | None = None,
    holds: npt.ArrayLike | None = None,
    routes: Sequence[frozenset[str] | set[str] | tuple[str, ...]] | None = None,
) -> RuleEffects:
    """Apply the acting (active) hits to per-row tiers, harm classes, holds and routes; returns new values.

    Absent inputs start empty: tier P3, no harm class, no hold, no route. ``columns`` supplies the values of
    the reason placeholders (the same columns the rules were evaluated on).
    """
    n = hits.n_rows
    tier_out = np.array(["P3"] * n if tiers is None else list(tiers), dtype=object)
    if tier_out.shape != (n,):
        raise ValueError(f"tiers has {tier_out.shape[0]} values for {n} rows")
    unknown = sorted(set(tier_out.tolist()) - set(TIER_NAMES))
    if unknown:
        raise ValueError(f"unknown tiers {unknown}; expected {TIER_NAMES}")
    hold_out = np.zeros(n, dtype=bool) if holds is None else np.array(holds, dtype=bool).reshape(-1)
    if hold_out.shape != (n,):
        raise ValueError(f"holds has {hold_out.shape[0]} values for {n} rows")
    for name, given in (("harm_classes", harm_classes), ("routes", routes)):
        if given is not None and len(given) != n:
            raise ValueError(f"{name} has {len(given)} values for {n} rows")
    harm_out = [set() if harm_classes is None else set(harm_classes[i]) for i in range(n)]
    route_out = [set() if routes is None else set(routes[i]) for i in range(n)]
    reasons: list[list[str]] = [[] for _ in range(n)]
    acting = [j for j, rule in enumerate(hits.rules) if rule.mode is RuleMode.ACTIVE]
    # only the cells that hit are visited: one nonzero() over the active columns, rows in order, rules in order
    rows, which = np.nonzero(hits.matrix[:, acting]) if acting else (np.empty(0, int), np.empty(0, int))
    for row, k in zip(rows.tolist(), which.tolist(), strict=True):
        rule = hits.rules[acting[k]]
        action = rule.action
        if isinstance(action, ForceTier):
            if _TIER_RANK[action.tier] < _TIER_RANK[tier_out[row]]:
                tier_out[row] = action.tier
        elif isinstance(action, AddHarmClass):
            harm_out[row].add(action.harm_class)
        elif isinstance(action, Hold):
            hold_out[row] = True
        elif isinstance(action, Route):
            route_out[row].add(action.skill)
        names = [name for name, _spec in reason_placeholders(rule.reason)]
        reasons[row].append(reason_text(rule, _row_values(columns, names, row)))
    return RuleEffects(
        tiers=tier_out,
        harm_classes=tuple(frozenset(s) for s in harm_out),
        holds=hold_out,
        routes=tuple(frozenset(s) for s in route_out),
        reasons=tuple(tuple(r) for r in reasons),
    )
