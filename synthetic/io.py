"""Reading and writing a generated data set folder (Parquet tables + manifest.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from synthetic.dataset import EntityTables, MarketplaceData
from synthetic.extensions import extension_specs
from synthetic.schema import NULLABLE_INT, TABLES, TIMESTAMP, TRUTH_TABLES
from triage.entities import ENTITIES

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
    for entity, tables in data.extra.items():
        spec = ENTITIES.get(entity)
        for frame, columns, file in ((tables.records, tables.columns, spec.data_file),
                                     (tables.truth, tables.truth_columns, spec.truth_file)):
            if file is None:
                raise ValueError(f"entity {entity!r} declares no file for its generated table")
            pq.write_table(_arrow_table(frame, dict(columns)), out_dir / file, compression="zstd")
    (out_dir / MANIFEST).write_text(json.dumps(data.manifest, indent=2, sort_keys=True) + "\n")


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def _read(file: Path, columns: dict[str, str]) -> pd.DataFrame:
    frame = pq.read_table(file).to_pandas()
    # Arrow hands back integer columns with nulls as float64: restore the nullable integers of the schema
    for column, dtype in columns.items():
        if dtype == NULLABLE_INT and column in frame.columns:
            frame[column] = frame[column].astype(NULLABLE_INT)
    return frame


def read_dataset(path: Path, with_truth: bool = True) -> MarketplaceData:
    """Load a data set folder. Without truth the truth frames are empty (columns and dtypes only)."""
    path = Path(path)
    frames: dict[str, pd.DataFrame] = {}
    for name, columns in TABLES.items():
        if name in TRUTH_TABLES and not with_truth:
            frames[name] = _empty(dict(columns))
            continue
        frames[name] = _read(path / f"{name}.parquet", dict(columns))
    extra = {}
    for spec in extension_specs():
        if spec.data_file is None or not (path / spec.data_file).is_file():
            continue  # a data set generated before the entity type was added
        records = pq.read_table(path / spec.data_file).to_pandas()
        truth_file = path / str(spec.truth_file)
        truth = pq.read_table(truth_file).to_pandas() if with_truth and truth_file.is_file() else records.iloc[:0, :1]
        extra[spec.name] = EntityTables(records, truth, {}, {})
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["truth_loaded"] = with_truth
    return MarketplaceData(
        accounts=frames["accounts"],
        account_identifiers=frames["account_identifiers"],
        listings=frames["listings"],
        account_truth=frames["account_truth"],
        listing_truth=frames["listing_truth"],
        manifest=manifest,
        extra=extra,
    )
