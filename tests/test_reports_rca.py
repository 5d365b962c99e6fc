"""RCA findings on a marketplace with a known injected fraud pattern (toys shipped from TR from day 60):
the pattern's segment is among the top segments and a suggested rule names it and catches most of its
violations on the later, held-out part of the window, far above the base rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports.config import RcaConfig
from reports.rca import default_segment_columns, rca_frame_from_dataset, rule_design, run_rca, write_rca_report
from reports.segments import segment_table
from tests.test_reports_monitor import PATTERN_CATEGORY, PATTERN_ORIGIN, DriftedMarket, build_drifted_market


@pytest.fixture(scope="session")
def drifted_market(tmp_path_factory: pytest.TempPathFactory) -> DriftedMarket:
    return build_drifted_market(tmp_path_factory.getbasetemp() / "reports-drifted-market")


def test_segment_lift_finds_a_planted_segment() -> None:
    rng = np.random.default_rng(1)
    n = 5000
    segments = pd.DataFrame({"a": rng.choice(["x", "y", "z"], n), "b": rng.choice(["u", "v"], n)})
    planted = ((segments["a"] == "z") & (segments["b"] == "v")).to_numpy()
    label = (rng.random(n) < np.where(planted, 0.5, 0.02)).astype(int)
    table = segment_table(segments, label, label * 100.0, RcaConfig())
    assert table.iloc[0]["segment"] == "a = z AND b = v"
    assert table.iloc[0]["lift"] > 3


@pytest.mark.slow
def test_rca_finds_the_injected_pattern(drifted_market: DriftedMarket, tmp_path: Path) -> None:
    import json

    manifest = json.loads((drifted_market.dataset / "manifest.json").read_text())
    pattern = next(d for d in manifest["drift"] if d["kind"] == "pattern")
    assert (pattern["category"], pattern["shipping_origin"]) == (PATTERN_CATEGORY, PATTERN_ORIGIN)

    frame = rca_frame_from_dataset(drifted_market.dataset, drifted_market.artifact)
    report = run_rca(frame, drifted_market.artifact)

    # segments: the injected origin leads, and the exact injected pair is in the top five
    top = report.top_segments(5)
    print(top[["segment", "cases", "violations", "lift"]].to_string())
    assert ("shipping_origin", PATTERN_ORIGIN) in zip(top.iloc[0]["columns"], top.iloc[0]["values"], strict=True)
    pairs = [dict(zip(c, v, strict=True)) for c, v in zip(top["columns"], top["values"], strict=True)]
    assert {"category": PATTERN_CATEGORY, "shipping_origin": PATTERN_ORIGIN} in pairs

    # rules: one names the injected segment and, on the held-out later part, catches most of its violations
    in_segment = ((frame["category"] == PATTERN_CATEGORY) & (frame["shipping_origin"] == PATTERN_ORIGIN)).to_numpy()
    later = (pd.to_datetime(frame["scored_at"], utc=True) >= report.backtest_start).to_numpy()
    violations = frame["label"].to_numpy() == 1
    target = in_segment & later & violations
    design = rule_design(frame, drifted_market.artifact, default_segment_columns(frame, "listing"))
    naming = [r for r in report.rules if {"category", "shipping_origin"} & r.columns()
              and any(c.op == "=" and c.value in (PATTERN_CATEGORY, PATTERN_ORIGIN) for c in r.conditions)]
    assert naming, report.rules_table()["conditions"].tolist()
    best = max(naming, key=lambda r: (r.mask(design) & target).sum())
    caught_share = (best.mask(design) & target).sum() / target.sum()
    print(f"rule {best.text!r}: caught {caught_share:.0%} of the held-out segment violations, "
          f"precision {best.backtest.precision:.0%} vs base rate {report.base_rate:.1%}")
    # "most": since the generator spreads a wave's violations over several signals (seller age among them),
    # the learnt rule trades some of the segment for precision (54 % caught at 69 % precision on seed 5)
    assert caught_share > 0.5, (best.text, caught_share)
    assert best.backtest.precision > 5 * report.base_rate, (best.text, best.backtest)

    out = write_rca_report(report, tmp_path)
    markdown = out.markdown.read_text()
    assert PATTERN_ORIGIN in markdown and "Candidate rules" in markdown
    assert out.html.read_text().count("data:image/png;base64,") == 3
