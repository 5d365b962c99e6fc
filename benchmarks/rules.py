"""Policy rules on the scoring path: what evaluating 1, 10 and 50 compiled CEL rules costs per record, for one
record (a single-record request) and for 1,000 (a batch request).

    python -m benchmarks.rules             # ~20 s; prints the table
    python -m benchmarks.rules --readme    # also writes it into its section of benchmarks/README.md

Variables like a listing's: 20 numbers (12 % missing, NaN) and 5 strings (10 % missing, ""). Rules are drawn
from the shapes risk teams write: numeric thresholds joined by ``&&``, category lists (``in``), text matches
(``contains``/``matches``), explicit ``!= null`` guards. Each cell is the median over repeated calls of
``RuleSet.evaluate`` (including converting the columns), and ``RuleSet.evaluate`` + ``apply_rule_hits``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from benchmarks.common import machine_description, machine_markdown
from benchmarks.report import fmt, publish, table
from policy.rule_effects import apply_rule_hits
from policy.rule_engine import RuleSet, VariableKind
from policy.rulebook import Rule

NUMBERS = [f"num_{i}" for i in range(20)]
STRINGS = ["category", "brand", "title", "shipping_origin", "verification"]
CATEGORIES = ["health", "vape", "fashion", "electronics", "sports", "home"]
VARIABLES = {**dict.fromkeys(NUMBERS, VariableKind.NUMBER), **dict.fromkeys(STRINGS, VariableKind.STRING)}


def make_columns(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for name in NUMBERS:
        values = rng.gamma(2.0, 40.0, size=n)
        values[rng.random(n) < 0.12] = np.nan
        columns[name] = values
    words = np.array(["vape cart", "thc", "replica bag", "new shoes", "phone case", "vitamin"], dtype=object)
    for name in STRINGS:
        pool = np.array(CATEGORIES, dtype=object) if name != "title" else words
        values = pool[rng.integers(0, len(pool), size=n)].copy()
        values[rng.random(n) < 0.10] = ""
        columns[name] = values
    return columns


def make_rules(count: int, seed: int = 1) -> list[Rule]:
    rng = np.random.default_rng(seed)
    shapes = [
        "{a} < {x} && {b} >= {y} && category in ['health', 'vape']",
        "{a} != null && {a} > {x} && brand == 'fashion'",
        "title.contains('thc') && {a} < {x}",
        "{a} / ({b} + 1.0) > {r} || shipping_origin in ['vape', 'sports'] && {c} > {y}",
        "title.matches('(?i)replica|1:1') && verification != 'home'",
        "{a} > {x} && {b} > {y} && {c} < {x}",
    ]
    rules = []
    for i in range(count):
        a, b, c = (NUMBERS[int(k)] for k in rng.choice(len(NUMBERS), 3, replace=False))
        condition = shapes[i % len(shapes)].format(a=a, b=b, c=c, x=f"{rng.uniform(20, 120):.1f}",
                                                   y=f"{rng.uniform(20, 120):.1f}", r=f"{rng.uniform(0.5, 2):.2f}")
        mode = "active" if i % 2 else "shadow"
        rules.append(Rule.model_validate({
            "rule_id": f"bench-{i}", "version": 1, "entity_type": "listing", "name": f"bench rule {i}",
            "condition": condition, "mode": mode, "reason": f"bench rule {i}: {a} = {{{a}}}",
            "action": {"kind": "force_tier", "tier": "P1"} if i % 3 else {"kind": "hold"},
        }))
    return rules


def median_seconds(call: Callable[[], object], min_calls: int, budget_s: float) -> float:
    for _ in range(3):
        call()
    times: list[float] = []
    stop_at = time.perf_counter() + budget_s
    while len(times) < min_calls or time.perf_counter() < stop_at:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        if len(times) >= 20 * min_calls:
            break
    return float(np.median(times))


def run(rule_counts: tuple[int, ...] = (1, 10, 50), row_counts: tuple[int, ...] = (1, 1_000)) -> str:
    rows_out = []
    for n_rules in rule_counts:
        rule_set = RuleSet.from_rules(make_rules(n_rules), VARIABLES)
        for n_rows in row_counts:
            columns = make_columns(n_rows)
            budget = 1.0 if n_rows == 1 else 2.0
            hits = rule_set.evaluate(columns, n_rows)

            def evaluate_only(rs: RuleSet = rule_set, c: dict[str, np.ndarray] = columns, n: int = n_rows) -> None:
                rs.evaluate(c, n)

            def both(rs: RuleSet = rule_set, c: dict[str, np.ndarray] = columns, n: int = n_rows) -> None:
                apply_rule_hits(rs.evaluate(c, n), c)

            evaluate = median_seconds(evaluate_only, 50, budget)
            with_effects = median_seconds(both, 50, budget)
            per_record = evaluate / n_rows * 1e6
            rows_out.append([
                str(n_rules), f"{n_rows:,}", str(len(rule_set.reads)), fmt(per_record, 1),
                fmt(per_record / n_rules, 2), fmt(with_effects / n_rows * 1e6, 1), fmt(evaluate * 1e3, 3),
                f"{hits.matrix.mean():.1%}",
            ])
    header = ["rules", "rows per call", "variables read", "evaluate µs / record", "µs / rule·record",
              "+ apply hits µs / record", "evaluate ms / call", "share of cells hit"]
    info = machine_description()
    return "\n".join([
        "### Policy rules (CEL) per record",
        "",
        machine_markdown(info),
        "",
        table(header, rows_out),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", action="store_true", help="write the table into benchmarks/README.md")
    args = parser.parse_args()
    publish("rules", run(), write_readme=args.readme)


if __name__ == "__main__":
    main()
