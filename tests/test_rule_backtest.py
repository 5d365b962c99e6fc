"""Rule backtests: precision, recall, coverage, what is caught, and what a rule adds to the active set, on rows
whose answers are counted by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from policy.rule_backtest import backtest_rule, columns_from_frame
from tests.test_rule_engine import VARIABLES, make_rule

# 8 rows: price, category, truth, loss, harm
FRAME = pd.DataFrame({
    "price": [10.0, 20.0, 30.0, 200.0, 15.0, None, 300.0, 40.0],
    "category": ["vape", "vape", "health", "vape", "toys", "vape", "health", None],
    "prohibited_terms": [1.0, 0.0, 2.0, 3.0, 1.0, 1.0, 0.0, 1.0],
})
IS_VIOLATION = np.array([1, 1, 0, 1, 0, 1, 1, 0])
LOSS = np.array([100.0, 50.0, 0.0, 400.0, 0.0, 80.0, 30.0, 999.0])  # the last row is not a violation
HARM = np.array([5.0, 1.0, 0.0, 2.0, 0.0, 3.0, 4.0, 7.0])


def test_candidate_alone_and_against_the_active_set() -> None:
    candidate = make_rule(rule_id="cheap", condition="price < 50.0", mode="shadow")  # rows 0 1 2 4 7
    active = [make_rule(rule_id="vape", condition="category == 'vape'", mode="active")]  # rows 0 1 3 5
    result = backtest_rule(candidate, FRAME, variables=VARIABLES, is_violation=IS_VIOLATION, loss=LOSS,
                           harm=HARM, active=active)
    alone = result.alone
    assert (alone.rows, alone.hits, alone.violations, alone.violations_caught) == (8, 5, 5, 2)
    assert alone.coverage == pytest.approx(5 / 8)
    assert alone.precision == pytest.approx(2 / 5) and alone.recall == pytest.approx(2 / 5)
    assert alone.loss_caught == 150.0 and alone.loss_total == 660.0  # row 7's 999 is not a violation's loss
    assert alone.harm_caught == 6.0 and alone.harm_total == 15.0
    assert result.missing == 1 and result.errors == 0  # row 5 has no price

    without = result.active_without
    assert (without.hits, without.violations_caught, without.loss_caught) == (4, 4, 630.0)
    with_rule = result.active_with  # rows 0 1 2 3 4 5 7
    assert (with_rule.hits, with_rule.violations_caught, with_rule.loss_caught) == (7, 4, 630.0)
    assert with_rule.precision == pytest.approx(4 / 7)
    added = result.added  # rows 2 4 7: nothing the active set misses is caught
    assert (added.hits, added.violations_caught, added.loss_caught, added.harm_caught) == (3, 0, 0.0, 0.0)
    assert math.isclose(added.precision, 0.0)


def test_new_version_replaces_the_active_one_on_the_with_side() -> None:
    live = make_rule(rule_id="cheap", version=1, condition="price < 25.0", mode="active")  # rows 0 1 4
    candidate = make_rule(rule_id="cheap", version=2, condition="price < 12.0", mode="shadow")  # row 0
    result = backtest_rule(candidate, FRAME, variables=VARIABLES, is_violation=IS_VIOLATION, loss=LOSS,
                           harm=HARM, active=[live])
    assert result.active_without.hits == 3
    assert result.active_with.hits == 1 and result.added.hits == 1


def test_columns_and_frames_give_the_same_answer_and_bad_labels_are_refused() -> None:
    candidate = make_rule(condition="prohibited_terms >= 1.0 && category in ['vape', 'health']")
    columns = columns_from_frame(FRAME, VARIABLES)
    assert columns["category"][7] == "" and math.isnan(columns["price"][5])
    from_frame = backtest_rule(candidate, FRAME, variables=VARIABLES, is_violation=IS_VIOLATION, loss=LOSS,
                               harm=HARM)
    from_columns = backtest_rule(candidate, columns, variables=VARIABLES, is_violation=IS_VIOLATION == 1,
                                 loss=LOSS, harm=HARM)
    assert from_frame.alone == from_columns.alone
    assert from_frame.active_without.hits == 0 and from_frame.added == from_frame.alone
    with pytest.raises(ValueError, match="is_violation"):
        backtest_rule(candidate, FRAME, variables=VARIABLES, is_violation=[1, 0, np.nan, 1, 0, 0, 0, 0],
                      loss=LOSS, harm=HARM)
    with pytest.raises(ValueError, match="loss has 2 values"):
        backtest_rule(candidate, FRAME, variables=VARIABLES, is_violation=IS_VIOLATION, loss=[1.0, 2.0],
                      harm=HARM)
    with pytest.raises(ValueError, match="mode active"):
        backtest_rule(candidate, FRAME, variables=VARIABLES, is_violation=IS_VIOLATION, loss=LOSS, harm=HARM,
                      active=[make_rule(rule_id="s", mode="shadow")])


def test_nothing_hit_gives_nan_precision() -> None:
    result = backtest_rule(make_rule(condition="price > 1e9"), FRAME, variables=VARIABLES,
                           is_violation=IS_VIOLATION, loss=LOSS, harm=HARM)
    assert result.alone.hits == 0 and math.isnan(result.alone.precision) and result.alone.recall == 0.0
