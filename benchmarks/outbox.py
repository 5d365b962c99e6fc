"""Outbox: does claiming cost the same however many events have been delivered before?

    python -m benchmarks.outbox                    # 1k, 100k, 1M delivered; SQLite, and PostgreSQL if reachable
    python -m benchmarks.outbox --sizes 1000 10000000 --readme

For each history size, a fresh database gets that many delivered events (generated in SQL), then each cycle
enqueues 100 events in one transaction, claims them (``claim_due``, limit 100) and marks them delivered; the
table shows the median of 20 cycles per step, and ``backlog()`` (the metrics query). PostgreSQL runs in a
throw-away database on 127.0.0.1:5432, dropped afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from benchmarks.common import machine_description, machine_markdown
from benchmarks.report import fmt, publish, table
from stores.engine import make_engine
from stores.migrate import upgrade
from stores.outbox import ClaimedDelivery, NewEvent, Outbox, Subscription

CYCLES = 20
BATCH = 100


def fill_history(engine: sa.Engine, n: int) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "INSERT INTO outbox_events (event_id, topic, key, payload, created_at) "
                f"SELECT lpad(to_hex(g), 32, '0'), 'listing.hold', 'L' || g, '{{}}'::jsonb, now() "
                f"FROM generate_series(1, {n}) g")
            connection.exec_driver_sql(
                "INSERT INTO outbox_deliveries (event_id, subscriber, status, attempts, next_attempt_at, "
                "delivered_at) SELECT lpad(to_hex(g), 32, '0'), 'marketplace', 'delivered', 1, now(), now() "
                f"FROM generate_series(1, {n}) g")
            connection.exec_driver_sql("ANALYZE outbox_events")
            connection.exec_driver_sql("ANALYZE outbox_deliveries")
        else:
            stamp = "'2026-01-01 00:00:00.000000'"
            series = f"WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < {n}) "
            connection.exec_driver_sql(
                series + "INSERT INTO outbox_events (event_id, topic, key, payload, created_at) "
                f"SELECT printf('%032x', g), 'listing.hold', 'L' || g, '{{}}', {stamp} FROM seq")
            connection.exec_driver_sql(
                series + "INSERT INTO outbox_deliveries (event_id, subscriber, status, attempts, next_attempt_at, "
                f"delivered_at) SELECT printf('%032x', g), 'marketplace', 'delivered', 1, {stamp}, {stamp} FROM seq")
            connection.exec_driver_sql("ANALYZE")


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def measure(engine: sa.Engine) -> dict[str, float]:
    outbox = Outbox(engine, [Subscription("marketplace", ("*",))])
    steps: dict[str, list[float]] = {"enqueue": [], "claim": [], "mark": [], "backlog": []}

    def timed(name: str, call: Callable[[], object]) -> object:
        start = time.perf_counter()
        result = call()
        steps[name].append(time.perf_counter() - start)
        return result

    events = [NewEvent("listing.hold", f"N{i}", {"listing_id": f"N{i}"}) for i in range(BATCH)]
    for _ in range(CYCLES):
        def enqueue() -> None:
            with engine.begin() as connection:
                outbox.enqueue_many(connection, events)

        timed("enqueue", enqueue)
        claims = timed("claim", lambda: outbox.claim_due("marketplace", BATCH, 60))
        assert isinstance(claims, list) and len(claims) == BATCH

        def mark(claimed: list[ClaimedDelivery] = claims) -> int:
            return outbox.mark_delivered(claimed)

        timed("mark", mark)
        timed("backlog", lambda: outbox.backlog("marketplace"))
    return {name: median_ms(values) for name, values in steps.items()}


def postgres_database() -> tuple[str, Callable[[], None]] | None:
    import psycopg

    name = f"triage_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True,
                                connect_timeout=3)
    except psycopg.OperationalError:
        return None
    admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def run(sizes: list[int]) -> str:
    rows = []
    backends: list[str] = ["sqlite"]
    pg = postgres_database()
    if pg is not None:
        backends.append("postgresql")
    try:
        with tempfile.TemporaryDirectory() as folder:
            for backend in backends:
                for size in sizes:
                    if backend == "sqlite":
                        url = f"sqlite:///{Path(folder) / f'outbox-{size}.db'}"
                    else:
                        assert pg is not None
                        url = pg[0]
                    engine = make_engine(url)
                    if backend == "postgresql":
                        from stores.schema import metadata

                        metadata.drop_all(engine)
                    upgrade(engine)
                    started = time.perf_counter()
                    fill_history(engine, size)
                    fill_s = time.perf_counter() - started
                    result = measure(engine)
                    engine.dispose()
                    rows.append([backend, f"{size:,}", fmt(fill_s, 1), fmt(result["enqueue"]),
                                 fmt(result["claim"]), fmt(result["mark"]), fmt(result["backlog"])])
                    print(" | ".join(rows[-1]), flush=True)
    finally:
        if pg is not None:
            pg[1]()
    header = ["backend", "delivered events before", "history fill s", f"enqueue {BATCH} ms", f"claim {BATCH} ms",
              f"mark {BATCH} delivered ms", "backlog() ms"]
    return "\n".join(["### Outbox claims against delivered history", "", machine_markdown(machine_description()),
                      "", f"Median of {CYCLES} cycles per step.", "", table(header, rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--readme", action="store_true", help="write the table into benchmarks/README.md")
    args = parser.parse_args()
    publish("outbox", run(args.sizes), write_readme=args.readme)


if __name__ == "__main__":
    main()
