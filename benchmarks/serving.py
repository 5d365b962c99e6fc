"""Serving benchmark: the real BentoML service against the in-process floor and a FastAPI peer.

    python -m benchmarks.serving            # full run (~4-5 min on 2 cores), writes benchmarks/README.md
    python -m benchmarks.serving --quick    # smaller data and fewer requests (~2 min)

One run generates a data set, fits the reference listing scorer (~300 trees, 63 leaves) with the project's
`fit_scorer`, registers it in a temporary MLflow store, then starts each server over that store and drives
it with the same loopback load generator (benchmarks/loadgen.py).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    Percentiles,
    ReferenceStore,
    build_reference_store,
    machine_description,
    machine_markdown,
    sample_records,
    time_calls,
)
from benchmarks.floor import FloorResult, measure_floor
from benchmarks.loadgen import LoadResult, run_load
from benchmarks.report import fmt, publish, table
from benchmarks.servers import Server, start_bento, start_peer


@dataclass(frozen=True)
class Budget:
    n_listings: int
    single_requests: int
    single_seconds: float
    c16_requests: int
    c16_seconds: float
    reasons_requests: int
    batch_requests: int
    floor_calls: int


FULL = Budget(100_000, 3000, 6.0, 20_000, 10.0, 1500, 400, 2000)
QUICK = Budget(60_000, 800, 4.0, 4000, 5.0, 400, 150, 500)


@dataclass
class ServerResult:
    name: str
    startup_seconds: float
    c1: LoadResult
    c16: LoadResult
    reasons: LoadResult
    batch: LoadResult
    rss_mib: dict[str, float] = field(default_factory=dict)
    # cores used by each worker process during the c=16 load (is the load spread over the workers?)
    c16_worker_cores: list[float] = field(default_factory=list)
    # the batch load's records ÷ (load seconds + seconds until the last of them was in the scoring log)
    batch_logged_rps: float = float("nan")
    drain_seconds: float = float("nan")

    @property
    def worker_rss(self) -> list[float]:
        return [v for k, v in self.rss_mib.items() if k.startswith("worker")]


def _bodies(records: list[dict[str, Any]], reasons: str, per_request: int, n: int) -> list[bytes]:
    out = []
    for k in range(n):
        chunk = [records[(k * per_request + j) % len(records)] for j in range(per_request)]
        out.append(json.dumps({"listings": chunk, "reasons": reasons, "top_reasons": 3}).encode())
    return out


def stored_scores(database_url: str) -> int:
    from stores.engine import make_engine
    from stores.scoring_log import ScoringLogReader

    engine = make_engine(database_url)
    try:
        return ScoringLogReader(engine).count_scores()
    finally:
        engine.dispose()


def wait_for_scores(database_url: str, expected: int, timeout: float = 120.0) -> float:
    """Seconds until the scoring log holds `expected` rows (the service writes it after answering); NaN if it
    did not within `timeout`."""
    start = time.perf_counter()
    while stored_scores(database_url) < expected:
        if time.perf_counter() - start > timeout:
            return float("nan")
        time.sleep(0.2)
    return time.perf_counter() - start


def wait_for_quiet_log(database_url: str, quiet_s: float = 1.0, timeout: float = 120.0) -> int:
    """The scoring log's row count once it has stopped growing for `quiet_s` (earlier loads written)."""
    start, last, since = time.perf_counter(), -1, time.perf_counter()
    while time.perf_counter() - start < timeout:
        count = stored_scores(database_url)
        if count != last:
            last, since = count, time.perf_counter()
        elif time.perf_counter() - since >= quiet_s:
            break
        time.sleep(0.2)
    return last


def measure_server(server: Server, records: list[dict[str, Any]], budget: Budget, database_url: str) -> ServerResult:
    singles = _bodies(records, "none", 1, 200)
    with_reasons = _bodies(records, "all", 1, 200)
    batches = _bodies(records, "none", 1000, 4)
    path = "/score_listings"
    c1 = run_load(server.url, path, singles, 1, budget.single_requests, budget.single_seconds)
    before = server.cpu_seconds()
    c16 = run_load(server.url, path, singles, 16, budget.c16_requests, budget.c16_seconds, warmup_requests=200,
                   connect_stagger_s=CONNECT_STAGGER_S)
    after = server.cpu_seconds()
    worker_cores = [(after[k] - before[k]) / c16.seconds for k in after if k.startswith("worker") and k in before]
    reasons = run_load(server.url, path, with_reasons, 1, budget.reasons_requests, budget.single_seconds)
    # Two connections keep the server busy while the client sends the next 1,000 records; a new connection per
    # request lets whichever worker is free take it, as it would from a pool of many callers.
    run_load(server.url, path, batches, 2, 4, budget.c16_seconds, warmup_requests=0, reconnect=True)
    # the scoring log catches up with every earlier load first, so the drain below is the measured load's own
    base = wait_for_quiet_log(database_url)
    batch = run_load(server.url, path, batches, 2, budget.batch_requests, budget.c16_seconds, warmup_requests=0,
                     records_per_request=1000, reconnect=True)
    answered = max(0, batch.requests - batch.errors)
    drain = wait_for_scores(database_url, base + 1000 * answered)
    logged = 1000 * answered / (batch.seconds + drain)
    return ServerResult(server.name, server.startup_seconds, c1, c16, reasons, batch, server.rss_mib(),
                        worker_cores, logged, drain)


# connection k of the c=16 load opens k × 2 ms after the first (see benchmarks/loadgen.py: run_load)
CONNECT_STAGGER_S = 0.002


VARIANTS = "benchmarks.variants.service:TriageService"
SERVERS: list[tuple[str, str, dict[str, str]]] = [
    # (label, target, extra env); target "peer" is the FastAPI baseline; each variant changes one shipped choice
    ("BentoML, serving/service.py as shipped (2 workers)", "serving.service:TriageService", {}),
    ("FastAPI + uvicorn peer (1 process)", "peer", {}),
    ("shipped, 1 worker", VARIANTS, {"BENCH_WORKERS": "1"}),
    ("shipped, reasons by exact TreeSHAP", "serving.service:TriageService", {"TRIAGE_REASONS_ATTRIBUTION": "treeshap"}),
    ("shipped, BentoML's timers kept and no gc.freeze()", VARIANTS,
     {"BENCH_BENTOML_TIMERS": "1", "BENCH_NO_GC_FREEZE": "1"}),
    ("shipped, access log on", VARIANTS, {"BENCH_ACCESS_LOG": "1"}),
    ("shipped, OpenTelemetry spans for scoring requests too", VARIANTS, {"BENCH_TRACE_SCORING": "1"}),
    ("shipped, asyncio + h11 instead of uvloop + httptools", VARIANTS, {"BENCH_ASYNCIO_H11": "1"}),
    ("adaptive batching (batchable endpoint, 1 worker, batches ≤ 64, ≤ 10 ms)",
     "benchmarks.variants.batching:BatchingTriage", {}),
]


@dataclass(frozen=True)
class ReasonsStudy:
    trees: int
    shap_1t: Percentiles
    shap_default: Percentiles
    path_table_build_s: float
    path_1row: Percentiles
    top1_agreement: float
    top3_set_agreement: float
    top1_in_top3: float
    rows: int


def _top_k(contrib: np.ndarray, k: int) -> list[list[int]]:
    # the selection `ScorerArtifact.reasons` makes: the k largest positive contributions of each row
    return [[int(j) for j in np.argsort(-row, kind="stable")[:k] if row[j] > 0] for row in contrib]


def study_reasons(scorer: Any, records: list[dict[str, Any]], n: int) -> ReasonsStudy:
    from models.attribution import Attribution, LeafPathAttribution

    artifact = scorer.artifact
    batch = artifact.score_records(records[:1000], num_threads=1)
    matrix = batch.matrix
    start = time.perf_counter()
    LeafPathAttribution.from_booster(artifact.booster)
    build = time.perf_counter() - start
    rows = iter(range(10**12))

    def row() -> np.ndarray:
        i = next(rows) % len(matrix)
        return matrix[i:i + 1]

    # the product's own calls: top-3 reasons of one row on one thread, as serving asks for them
    shap_1t = time_calls(lambda: artifact.reasons(row(), top_k=3, num_threads=1, method=Attribution.TREESHAP), n)
    shap_default = time_calls(lambda: artifact.reasons(row(), top_k=3, method=Attribution.TREESHAP), n)
    path_1row = time_calls(lambda: artifact.reasons(row(), top_k=3, num_threads=1, method=Attribution.PATH), n)
    shap = artifact.contributions(matrix, method=Attribution.TREESHAP)
    approx = artifact.contributions(matrix, method=Attribution.PATH)
    s3, a3 = _top_k(shap, 3), _top_k(approx, 3)
    top1 = np.mean([(s[:1] == a[:1]) for s, a in zip(s3, a3, strict=True)])
    top3 = np.mean([set(s) == set(a) for s, a in zip(s3, a3, strict=True)])
    # what a reviewer reads first: is the path method's first reason among TreeSHAP's first three?
    first_in_three = np.mean([bool(a) and a[0] in s for s, a in zip(s3, a3, strict=True)])
    return ReasonsStudy(artifact.booster.num_trees(), shap_1t, shap_default, build, path_1row, float(top1),
                        float(top3), float(first_in_three), len(matrix))


def _p(r: Percentiles) -> str:
    return f"{fmt(r.p50_ms)} / {fmt(r.p99_ms)}"


def _ratio(a: float, b: float) -> str:
    return fmt(a / b, 2) + "×" if b and b == b and a == a else "–"


def main_table(ours: ServerResult, peer: ServerResult, floor: FloorResult) -> str:
    def rps(r: LoadResult) -> str:
        return f"{fmt(r.requests_per_second, 0)} ({r.requests} req, {r.errors} errors)"

    floor_rps = 1000.0 / floor.single.mean_ms
    handler_rps = 1000.0 / floor.handler_single.mean_ms
    floor_batch = 1000.0 * 1000.0 / floor.batch_1000.mean_ms
    handler_batch = 1000.0 * 1000.0 / floor.handler_batch_1000.mean_ms
    handler_logged = 1000.0 * 1000.0 / floor.handler_batch_1000_logged.mean_ms
    rows = [
        ["1 record, c=1: p50 / p99 ms", _p(ours.c1.latency), _p(floor.single), _p(floor.handler_single),
         _ratio(ours.c1.latency.p50_ms, floor.single.p50_ms), _p(peer.c1.latency),
         _ratio(ours.c1.latency.p50_ms, peer.c1.latency.p50_ms) + " / "
         + _ratio(ours.c1.latency.p99_ms, peer.c1.latency.p99_ms)],
        ["1 record, c=1: requests/s", rps(ours.c1), fmt(floor_rps, 0) + " (1 core)", fmt(handler_rps, 0),
         _ratio(ours.c1.requests_per_second, floor_rps), rps(peer.c1),
         _ratio(ours.c1.requests_per_second, peer.c1.requests_per_second)],
        ["1 record, c=16: p50 / p99 ms", _p(ours.c16.latency), "", "", "", _p(peer.c16.latency),
         _ratio(ours.c16.latency.p50_ms, peer.c16.latency.p50_ms) + " / "
         + _ratio(ours.c16.latency.p99_ms, peer.c16.latency.p99_ms)],
        ["1 record, c=16: requests/s", rps(ours.c16), fmt(floor_rps, 0) + " (1 core)", fmt(handler_rps, 0),
         _ratio(ours.c16.requests_per_second, floor_rps), rps(peer.c16),
         _ratio(ours.c16.requests_per_second, peer.c16.requests_per_second)],
        ["c=16: CPU of each worker, cores", ", ".join(fmt(c) for c in ours.c16_worker_cores), "", "", "",
         ", ".join(fmt(c) for c in peer.c16_worker_cores), ""],
        ["1,000-record batches (c=2): records/s answered", fmt(ours.batch.records_per_second, 0)
         + f" ({ours.batch.errors} errors)", fmt(floor_batch, 0) + " (1 core)", fmt(handler_batch, 0),
         _ratio(ours.batch.records_per_second, floor_batch), fmt(peer.batch.records_per_second, 0),
         _ratio(ours.batch.records_per_second, peer.batch.records_per_second)],
        ["the same until every score is in the scoring log (SQLite): records/s",
         fmt(ours.batch_logged_rps, 0) + (f" (log done {fmt(ours.drain_seconds, 1)} s after the last answer)"
                                          if ours.drain_seconds == ours.drain_seconds else " (log not complete)"),
         "", fmt(handler_logged, 0) + " (+ log rows, 1 core)", _ratio(ours.batch_logged_rps, floor_batch),
         fmt(peer.batch_logged_rps, 0) + f" ({fmt(peer.drain_seconds, 1)} s)",
         _ratio(ours.batch_logged_rps, peer.batch_logged_rps)],
        ["1 record with top-3 reasons, c=1: p50 / p99 ms", _p(ours.reasons.latency) + f" ({ours.reasons.errors} "
         "errors)", _p(floor.single_reasons), _p(floor.handler_reasons),
         _ratio(ours.reasons.latency.p50_ms, floor.single_reasons.p50_ms), _p(peer.reasons.latency),
         _ratio(ours.reasons.latency.p50_ms, peer.reasons.latency.p50_ms) + " / "
         + _ratio(ours.reasons.latency.p99_ms, peer.reasons.latency.p99_ms)],
        ["start-up to ready, s", fmt(ours.startup_seconds), "", "", "", fmt(peer.startup_seconds),
         _ratio(ours.startup_seconds, peer.startup_seconds)],
        ["RSS per worker after load, MiB", ", ".join(fmt(v, 0) for v in ours.worker_rss)
         + f" (+ supervisor {fmt(sum(v for k, v in ours.rss_mib.items() if k.startswith('supervisor')), 0)})",
         "", "", "", ", ".join(fmt(v, 0) for v in peer.worker_rss),
         _ratio(float(np.mean(ours.worker_rss or [np.nan])), float(np.mean(peer.worker_rss or [np.nan])))],
    ]
    header = ["measure", "BentoML (product service)", "floor: features + predict", "floor: whole handler",
              "served ÷ floor", "FastAPI peer", "ours ÷ peer"]
    return table(header, rows)


def _median_by(results: list[Any], key: Any) -> Any:
    # the lower median for an even count: the conservative figure for a throughput
    ordered = sorted(results, key=key)
    return ordered[(len(ordered) - 1) // 2]


def median_result(rounds: list[ServerResult]) -> ServerResult:
    """Each measure from the round with its median figure (throughput for loads, p50 for reasons); errors of
    every round are kept in view by the spread table."""
    def rps(r: LoadResult) -> float:
        return r.requests_per_second

    first = rounds[0]
    c16_round = _median_by(rounds, lambda r: r.c16.requests_per_second)
    logged_round = _median_by(rounds, lambda r: r.batch_logged_rps)
    return ServerResult(
        first.name, float(np.median([r.startup_seconds for r in rounds])),
        _median_by([r.c1 for r in rounds], rps), c16_round.c16,
        _median_by([r.reasons for r in rounds], lambda r: -r.latency.p50_ms),
        _median_by([r.batch for r in rounds], rps), rounds[-1].rss_mib, c16_round.c16_worker_cores,
        logged_round.batch_logged_rps, logged_round.drain_seconds)


def spread_table(servers: list[tuple[str, str, dict[str, str]]], rounds_of: dict[str, list[ServerResult]]) -> str:
    rows = []
    for label, _, _ in servers:
        rs = rounds_of[label]
        rows.append([label,
                     " / ".join(fmt(r.c1.latency.p50_ms) for r in rs),
                     " / ".join(fmt(r.c16.requests_per_second, 0) for r in rs),
                     " / ".join(fmt(r.batch.records_per_second, 0) for r in rs),
                     " / ".join(fmt(r.batch_logged_rps, 0) for r in rs),
                     str(sum(r.c1.errors + r.c16.errors + r.reasons.errors + r.batch.errors for r in rs))])
    return table(["server", "c=1 p50 ms, each round", "c=16 req/s, each round", "batch records/s, each round",
                  "batch records/s until logged, each round", "errors, all rounds"], rows)


def variants_table(results: list[ServerResult]) -> str:
    rows = []
    for r in results:
        rows.append([
            r.name, _p(r.c1.latency), fmt(r.c1.requests_per_second, 0), _p(r.c16.latency),
            f"{fmt(r.c16.requests_per_second, 0)} ({r.c16.errors})", f"{fmt(r.c16.latency.mean_ms)}",
            ", ".join(fmt(c) for c in r.c16_worker_cores),
            _p(r.reasons.latency), f"{fmt(r.batch.records_per_second, 0)} ({r.batch.errors})",
            fmt(r.batch_logged_rps, 0),
            fmt(r.startup_seconds),
            ", ".join(fmt(v, 0) for v in r.worker_rss),
        ])
    header = ["server", "c=1 p50 / p99 ms", "c=1 req/s", "c=16 p50 / p99 ms", "c=16 req/s (errors)",
              "c=16 mean ms", "c=16 cores per worker", "reasons c=1 p50 / p99 ms", "batch records/s (errors)",
              "batch records/s until logged", "start-up s", "worker RSS MiB"]
    return table(header, rows)


def parts_table(floor: FloorResult) -> str:
    return table(["step (1 listing, in process)", "median µs"], [[k, fmt(v, 1)] for k, v in floor.parts_us.items()])


def reasons_table(s: ReasonsStudy) -> str:
    rows = [
        ["`reasons(top_k=3)` by TreeSHAP (`pred_contrib`), 1 row, 1 thread", _p(s.shap_1t), "exact"],
        ["the same, LightGBM's default threads (both cores)", _p(s.shap_default), "exact"],
        ["`reasons(top_k=3)` by path attribution (models/attribution.py, shipped default), 1 row", _p(s.path_1row),
         f"sums to the raw score exactly; same top reason as TreeSHAP on {s.top1_agreement:.0%} of {s.rows} rows, "
         f"same top-3 set on {s.top3_set_agreement:.0%}; its first reason is among TreeSHAP's top 3 on "
         f"{s.top1_in_top3:.0%}; table built once in {s.path_table_build_s:.2f} s"],
    ]
    return table([f"reasons of one row ({s.trees} trees)", "p50 / p99 ms", "exactness"], rows)


def run(quick: bool, workdir: Path, write_readme: bool, only_product: bool, rounds: int) -> str:
    budget = QUICK if quick else FULL
    info = machine_description()
    t0 = time.perf_counter()
    print(f"[bench] generating {budget.n_listings:,} listings and fitting the reference scorer ...", flush=True)
    store: ReferenceStore = build_reference_store(workdir, budget.n_listings, rounds=300)
    print(f"[bench] scorer: {store.trees} trees, ≤{store.leaves} leaves, fit in {store.train_seconds:.1f} s",
          flush=True)
    records = sample_records(store.dataset, 2000)

    from mlflow import MlflowClient

    from models.attribution import Attribution
    from models.registry import load_scorer
    from triage.settings import TriageSettings

    # explained as the shipped service explains (its default settings)
    attribution = Attribution(TriageSettings().reasons_attribution)
    scorer = load_scorer(MlflowClient(store.tracking_uri), "triage-listing-scorer", attribution=attribution)
    database_url = TriageSettings(home=store.home).database_url
    print("[bench] in-process floor ...", flush=True)
    floor = measure_floor(scorer, records, budget.floor_calls, workdir / "floor-log.db")
    study = study_reasons(scorer, records, budget.floor_calls)

    servers = SERVERS[:2] if only_product else SERVERS
    rounds_of: dict[str, list[ServerResult]] = {label: [] for label, _, _ in servers}
    # rounds interleave the servers, so that a slow spell of a shared machine hits all of them alike
    for round_no in range(rounds):
        for index, (label, target, env) in enumerate(servers):
            print(f"[bench] round {round_no + 1}/{rounds}: {label} ...", flush=True)
            log = workdir / f"server-{index}-round-{round_no}.log"
            server = (start_peer(store.env(), log) if target == "peer"
                      else start_bento(target, store.env() | env, log))
            try:
                result = measure_server(server, records, budget, database_url)
            finally:
                server.stop()
            result.name = label
            rounds_of[label].append(result)
            print(f"        c1 p50 {result.c1.latency.p50_ms:.2f} ms, c16 {result.c16.requests_per_second:.0f} "
                  f"req/s p99 {result.c16.latency.p99_ms:.1f} ms, batch {result.batch.records_per_second:.0f} "
                  f"records/s, errors {result.c16.errors} (c=16), {result.batch.errors} (batches)", flush=True)
    results = [median_result(rounds_of[label]) for label, _, _ in servers]
    spread = spread_table(servers, rounds_of)

    ours, peer = results[0], results[1]
    elapsed = time.perf_counter() - t0
    body = "\n\n".join([
        f"### Serving ({'quick' if quick else 'full'} run, {elapsed:.0f} s)",
        machine_markdown(info) + f"\n- load average at end: {' / '.join(f'{v:.2f}' for v in os.getloadavg())}",
        f"Reference listing scorer: {store.trees} trees, up to {store.leaves} leaves, "
        f"{len(scorer.artifact.encoder.feature_names)} features, "
        f"fit on {budget.n_listings:,} generated listings in {store.train_seconds:.1f} s. Single-record "
        "requests ask `reasons=none`; the reasons row asks `reasons=all, top_reasons=3`. Client: "
        "benchmarks/loadgen.py on the same two cores (keep-alive connections, every response checked for 200).",
        main_table(ours, peer, floor),
        "Floor columns: 'features + predict' is `artifact.score_records` (1 thread); 'whole handler' adds "
        "pydantic validation, `model_dump()`, `serving.scoring.score_records` and the JSON encoding, i.e. all "
        "the work a server must do apart from HTTP. Floor requests/s are 1 ÷ mean on one core.",
        "#### Where one record's time goes (in process)",
        parts_table(floor),
        f"#### Variants of the service (benchmarks/variants/service.py), same load, median of {rounds} "
        "interleaved round(s)",
        variants_table(results),
        "Each round's figures (the machine's other load moves them; differences inside this spread are noise):",
        spread,
        "#### Reasons: attribution cost per row",
        reasons_table(study),
    ])
    return publish("serving", body, write_readme)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller data and fewer requests")
    parser.add_argument("--workdir", type=Path, help="keep data, store and server logs here (default: temporary)")
    parser.add_argument("--no-readme", action="store_true", help="print the tables only")
    parser.add_argument("--product-only", action="store_true", help="skip the service variants")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over all servers (median kept)")
    args = parser.parse_args()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        run(args.quick, args.workdir, not args.no_readme, args.product_only, args.rounds)
    else:
        with tempfile.TemporaryDirectory(prefix="triage-bench-") as tmp:
            run(args.quick, Path(tmp), not args.no_readme, args.product_only, args.rounds)


if __name__ == "__main__":
    main()
