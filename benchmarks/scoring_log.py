"""Scoring-log write path: what one served score costs to record, and how fast the embedded SQLite store takes
rows from one and from two writer processes (the service's two workers).

    python -m benchmarks.scoring_log            # ~1 min on 2 cores, writes its section of benchmarks/README.md

Compares, on fresh SQLite files in a temporary folder:
- building the rows of a 1,000-record model call: one validated `ScoreRecord` per row (the former
  `log_entries`) against `ScoreRecord.from_columns` (shipped);
- inserting 2,000-row transactions: SQLAlchemy Core `executemany` with random (version 4) ids, the former
  path, against `stores.score_insert.ScoreInsert` (one multi-row statement) with random ids and with the
  shipped time-ordered (version 7) ids; each by one process alone and by two processes at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine_description, machine_markdown, time_calls
from benchmarks.report import fmt, publish, table

ROWS_PER_TRANSACTION = 2_000


def model_call(n: int, seed: int = 0) -> dict[str, Any]:
    """Columns like one model call's: 15 features with missing values, as `serving.scoring.log_entries` passes."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 15)) * 100
    features[rng.random((n, 15)) < 0.15] = np.nan
    return {
        "scored_at": datetime.now(UTC), "entity_type": "listing", "model_name": "triage-listing-scorer",
        "model_version": "3", "model_alias": "champion", "served": True, "feature_names_hash": "0123456789abcdef",
        "request_id": uuid.uuid4().hex, "entity_ids": [f"L{seed}-{i}" for i in range(n)],
        "probability": rng.random(n), "score": rng.random(n) * 100, "tier": ["P2"] * n,
        "expected_loss": rng.random(n) * 300, "features": features,
    }


def records_one_by_one(columns: dict[str, Any]) -> list[Any]:
    from stores.records import ScoreRecord

    c = columns
    return [ScoreRecord(scored_at=c["scored_at"], entity_type=c["entity_type"], entity_id=c["entity_ids"][i],
                        model_name=c["model_name"], model_version=c["model_version"], model_alias=c["model_alias"],
                        served=c["served"], probability=float(c["probability"][i]), score=float(c["score"][i]),
                        tier=c["tier"][i], expected_loss=float(c["expected_loss"][i]),
                        feature_vector=tuple(c["features"][i].tolist()), feature_names_hash=c["feature_names_hash"],
                        request_id=c["request_id"])
            for i in range(len(c["entity_ids"]))]


def transactions(count: int, ordered_ids: bool, seed: int) -> list[list[Any]]:
    from stores.records import ScoreRecord

    out = []
    for k in range(count):
        rows = ScoreRecord.from_columns(**model_call(ROWS_PER_TRANSACTION, seed * 10_000 + k))
        if not ordered_ids:
            rows = [dataclasses.replace(r, id=uuid.uuid4().hex) for r in rows]
        out.append(rows)
    return out


def insert_function(engine: Any, method: str) -> Callable[[list[Any]], None]:
    from sqlalchemy.dialects import sqlite

    from stores.schema import scores
    from stores.score_insert import ScoreInsert

    if method == "executemany":
        statement = sqlite.insert(scores).on_conflict_do_nothing(index_elements=[scores.c.id])

        def by_executemany(rows: list[Any]) -> None:
            with engine.begin() as connection:
                connection.execute(statement, [r.to_row() for r in rows])
        return by_executemany
    insert = ScoreInsert(engine)

    def by_multi_row(rows: list[Any]) -> None:
        with engine.begin() as connection:
            insert.insert(connection, rows)
    return by_multi_row


def writer(database: str, method: str, ordered_ids: bool, count: int, seed: int, results: Any) -> None:
    from stores.engine import make_engine

    engine = make_engine(f"sqlite:///{database}")
    batches = transactions(count, ordered_ids, seed)  # built before the clock starts
    write = insert_function(engine, method)
    start = time.perf_counter()
    for rows in batches:
        write(rows)
    results.put(count * ROWS_PER_TRANSACTION / (time.perf_counter() - start))
    engine.dispose()


def rows_per_second(folder: Path, method: str, ordered_ids: bool, processes: int, count: int) -> float:
    from stores.engine import make_engine
    from stores.migrate import upgrade

    database = folder / f"{method}-{ordered_ids}-{processes}.db"
    upgrade(make_engine(f"sqlite:///{database}"))
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=writer, args=(str(database), method, ordered_ids, count, seed, results))
               for seed in range(processes)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return float(sum(results.get() for _ in workers))


def run(write_readme: bool, transactions_per_writer: int) -> str:
    from stores.records import ScoreRecord

    info = machine_description()
    t0 = time.perf_counter()
    call = model_call(1_000)
    build = {
        "one validated `ScoreRecord` per row (former `log_entries`)": time_calls(
            lambda: records_one_by_one(call), 30, warmup=3),
        "`ScoreRecord.from_columns` (shipped)": time_calls(lambda: ScoreRecord.from_columns(**call), 30, warmup=3),
    }
    modes = [("SQLAlchemy Core executemany, random ids (former)", "executemany", False),
             ("one multi-row INSERT per 2,000 rows, random ids", "multirow", False),
             ("one multi-row INSERT per 2,000 rows, time-ordered ids (shipped)", "multirow", True)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, method, ordered in modes:
            print(f"[bench] {label} ...", flush=True)
            alone = rows_per_second(Path(tmp), method, ordered, 1, transactions_per_writer)
            pair = rows_per_second(Path(tmp), method, ordered, 2, transactions_per_writer)
            rows.append([label, fmt(alone, 0), fmt(pair, 0)])
    elapsed = time.perf_counter() - t0
    body = "\n\n".join([
        f"### Scoring log writes ({elapsed:.0f} s)",
        machine_markdown(info),
        "Rows of one 1,000-record model call (15 features, 15 % missing), built in process:",
        table(["building the rows of 1,000 scores", "p50 / p99 ms"],
              [[k, f"{fmt(v.p50_ms)} / {fmt(v.p99_ms)}"] for k, v in build.items()]),
        f"Inserting {transactions_per_writer} transactions of {ROWS_PER_TRANSACTION:,} rows per writer into a "
        "fresh SQLite file (WAL, synchronous=FULL, the `scores` table with its three indexes), as each service "
        "worker's store thread does; two writers are two processes on the same file at once:",
        table(["insert path", "rows/s, one writer", "rows/s, two writers together"], rows),
    ])
    return publish("scoring-log", body, write_readme)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=30, help="transactions per writer")
    parser.add_argument("--no-readme", action="store_true", help="print only")
    args = parser.parse_args()
    run(not args.no_readme, args.transactions)


if __name__ == "__main__":
    main()
