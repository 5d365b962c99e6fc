"""Batch scoring of a Parquet data set through Dask: `artifact.score_frame` per partition, Parquet out.

The per-partition function is the artifact's own `score_frame`, so a batch score equals the in-process
score of the same rows exactly; Dask only decides where and in how many pieces it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd
import pyarrow.parquet as pq
from dask.diagnostics import ProgressBar
from distributed import Client
from distributed import progress as show_progress

from features.context import context_columns, join_context, joined_names
from models.artifact import ScorerArtifact
from training.distributed import connected

DEFAULT_BLOCKSIZE = "64MiB"


@dataclass(frozen=True)
class BatchScoreResult:
    output_path: Path
    rows: int
    partitions: int


def _score_partition(part: pd.DataFrame, artifact: ScorerArtifact, num_threads: int) -> pd.DataFrame:
    scored = artifact.score_frame(part, num_threads=num_threads)
    scored.index = part.index
    return scored


def score_dask_frame(artifact: ScorerArtifact, frame: dd.DataFrame, num_threads: int = 1) -> dd.DataFrame:
    """Lazily score a Dask frame of raw records: one `score_frame` call per partition."""
    # the output schema from a call on dask's placeholder rows: a zero-row call would type the id and tier
    # columns `object` where real partitions give `str`, and Parquet needs the real schema up front
    meta = _score_partition(frame._meta_nonempty, artifact, num_threads).iloc[:0]
    return frame.map_partitions(_score_partition, artifact, num_threads, meta=meta)


def read_records(artifact: ScorerArtifact, input_path: Path | str, blocksize: str | int | None = DEFAULT_BLOCKSIZE,
                 linked: Mapping[str, Path | str] | None = None) -> dd.DataFrame:
    """The input's raw fields as a Dask frame (only the columns the features read are loaded). `linked` gives
    the tables of the entity types the records link to (the accounts behind listings): their context is
    joined in as training joins it (`features.context.join_context`)."""
    fs = artifact.feature_set
    entity = artifact.entity
    available = set(pq.read_schema(_first_file(Path(input_path))).names)
    joined = joined_names(entity) if linked else set()
    wanted = [raw.name for raw in fs.inputs if raw.name in available and raw.name not in joined]
    frame = dd.read_parquet(str(input_path), columns=wanted, blocksize=blocksize)
    if linked:
        needed = context_columns(entity)
        unknown = set(linked) - set(needed)
        if unknown:
            raise ValueError(f"{entity} records do not link to {sorted(unknown)}; they link to {sorted(needed)}")
        tables = {other: pd.read_parquet(linked[other], columns=columns) for other, columns in needed.items()
                  if other in linked}
        frame = frame.map_partitions(join_context, entity, tables)
    return frame


def _first_file(path: Path) -> Path:
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"no Parquet files under {path}")
        return files[0]
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return path


def score_parquet(
    artifact: ScorerArtifact,
    input_path: Path | str,
    output_path: Path | str,
    client: Client | str | None = None,
    blocksize: str | int | None = DEFAULT_BLOCKSIZE,
    linked: Mapping[str, Path | str] | None = None,
    progress: bool = False,
    min_partitions: int | None = None,
) -> BatchScoreResult:
    """Score a Parquet file or folder of raw records into a Parquet folder (one file per partition).

    `client` is a Dask Client or a scheduler address; without one, Dask's local threaded scheduler runs it.
    Each partition scores with one LightGBM thread: parallelism comes from partitions, not from threads.
    Dask cannot split a Parquet row group, so a file written as one big row group is one partition; pass
    `min_partitions` (e.g. 2-4 × the workers' threads) to split it after reading.
    """
    frame = read_records(artifact, input_path, blocksize, linked)
    if min_partitions is not None and frame.npartitions < min_partitions:
        frame = frame.repartition(npartitions=min_partitions)
    scored = score_dask_frame(artifact, frame)
    write = scored.to_parquet(str(output_path), write_index=False, compute=False)
    rows = scored.map_partitions(len, meta=(None, "int64"))
    if client is None:
        results = _compute_local(write, rows, progress)
    else:
        with connected(client) as dask_client:
            results = _compute_distributed(dask_client, write, rows, progress)
    return BatchScoreResult(Path(output_path), int(sum(results)), int(scored.npartitions))


def _compute_local(write: Any, rows: Any, progress: bool) -> list[int]:
    if progress:
        with ProgressBar():
            _, counts = dask.compute(write, rows)
    else:
        _, counts = dask.compute(write, rows)
    return list(counts)


def _compute_distributed(client: Client, write: Any, rows: Any, progress: bool) -> list[int]:
    # one graph for both, so each partition is scored once and both the file and its row count come from it
    futures = client.compute([write, rows])
    if progress:
        show_progress(futures)
    _, counts = client.gather(futures)
    return list(counts)
