"""Reading and writing a generated data set folder (Parquet tables + manifest.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from synthetic.generator import MarketplaceData
from synthetic.schema import NULLABLE_INT, TABLES, TIMESTAMP, TRUTH_TABLES

MANIFEST = "manifest.json"


def _arrow_table(frame: pd.DataFrame, columns: dict[str, str]) -> pa.Table:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"missing columns {missing}")
    # contract columns first, in contract order; any extra (documented) truth columns follow
    ordered = [*columns, *(c for c in frame.columns if c not in columns)]
    arrays = [_arrow_column(frame[c], columns.get(c)) for c in ordered]
    return pa.Table.from_arrays(arrays, names=ordered)


def _arrow_column(series: pd.Series, dtype: str | None) -> pa.Array:
    if dtype == TIMESTAMP:
        naive = series.dt.tz_convert("UTC").dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
        return pa.array(naive, type=pa.timestamp("us", tz="UTC"))
    return pa.array(series)


def write_dataset(data: MarketplaceData, out_dir: Path) -> None:
    """Write the five tables as Parquet and the manifest as JSON into ``out_dir`` (created if needed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in data.tables().items():
        table = _arrow_table(frame, dict(TABLES[name]))
        pq.write_table(table, out_dir / f"{name}.parquet", compression="zstd")
    (out_dir / MANIFEST).write_text(json.dumps(data.manifest, indent=2, sort_keys=True) + "\n")


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def read_dataset(path: Path, with_truth: bool = True) -> MarketplaceData:
    """Load a data set folder. Without truth the truth frames are empty (columns and dtypes only)."""
    path = Path(path)
    frames: dict[str, pd.DataFrame] = {}
    for name, columns in TABLES.items():
        if name in TRUTH_TABLES and not with_truth:
            frames[name] = _empty(dict(columns))
            continue
        frame = pq.read_table(path / f"{name}.parquet").to_pandas()
        # Arrow hands back integer columns with nulls as float64: restore the nullable integers of the schema
        for column, dtype in columns.items():
            if dtype == NULLABLE_INT and column in frame.columns:
                frame[column] = frame[column].astype(NULLABLE_INT)
        frames[name] = frame
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["truth_loaded"] = with_truth
    return MarketplaceData(
        accounts=frames["accounts"],
        account_identifiers=frames["account_identifiers"],
        listings=frames["listings"],
        account_truth=frames["account_truth"],
        listing_truth=frames["listing_truth"],
        manifest=manifest,
    )
