"""One official Tolokers split end to end through the product's adapter, graph features and trainer."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data" / "tolokers"


@pytest.mark.slow
def test_neighbour_features_beat_plain_features_on_split_zero() -> None:
    if not (DATA_DIR / "nodes.tsv").is_file() or not (DATA_DIR / "tolokers.npz").is_file():
        pytest.skip(f"../shared/data/tolokers not present: expected nodes.tsv and tolokers.npz in {DATA_DIR}")
    from benchmarks.tolokers import GRID, build_snapshots, graph_config, load_tolokers, run_split

    data = load_tolokers(DATA_DIR)
    snapshots = build_snapshots(data, graph_config())
    # one grid point keeps the test short; the benchmark selects among the whole grid on validation
    plain = run_split(data, 0, "plain", grid=GRID[:1])
    graph = run_split(data, 0, "graph", snapshots, grid=GRID[:1])
    assert graph.test_roc_auc > 0.8
    assert graph.test_roc_auc > plain.test_roc_auc + 0.05
    assert graph.test_pr_auc > plain.test_pr_auc
