"""Writing and reading a generated data set folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from synthetic.config import GeneratorConfig
from synthetic.generator import generate_marketplace
from synthetic.io import read_dataset, write_dataset
from synthetic.schema import TABLES


def test_round_trip(tmp_path: Path) -> None:
    data = generate_marketplace(GeneratorConfig(seed=4, n_accounts=400, n_listings=3000))
    write_dataset(data, tmp_path / "ds")
    files = {p.name for p in (tmp_path / "ds").iterdir()}
    assert files == {f"{name}.parquet" for name in TABLES} | {"manifest.json"}

    schema = pq.read_schema(tmp_path / "ds" / "listings.parquet")
    assert str(schema.field("created_at").type) == "timestamp[us, tz=UTC]"
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["seed"] == 4 and manifest["schema_version"]
    assert manifest["time_range"]["start"].startswith("2026-01-01")

    loaded = read_dataset(tmp_path / "ds")
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(data, name))
    assert loaded.manifest == data.manifest


def test_read_without_truth(tmp_path: Path) -> None:
    data = generate_marketplace(GeneratorConfig(seed=4, n_accounts=300, n_listings=1000))
    write_dataset(data, tmp_path)
    loaded = read_dataset(tmp_path, with_truth=False)
    assert loaded.manifest["truth_loaded"] is False
    assert len(loaded.listings) == 1000
    for name in ("account_truth", "listing_truth"):
        frame = getattr(loaded, name)
        assert frame.empty and list(frame.columns) == list(TABLES[name])
