"""The in-process floor: what one request costs without HTTP, using the same artifact and scoring code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import Percentiles, time_calls


@dataclass(frozen=True)
class FloorResult:
    single: Percentiles               # features + predict, 1 record
    single_reasons: Percentiles       # + top-3 reasons as served (the scorer's attribution), 1 record
    batch_1000: Percentiles           # features + predict, 1,000 records
    handler_single: Percentiles       # pydantic validation + model_dump + score_records + JSON, 1 record
    handler_reasons: Percentiles      # the same with reasons="all"
    handler_batch_1000: Percentiles   # the same for 1,000 records, reasons="none"
    # + the scoring log's rows for them (log_entries, then inserted and committed into a SQLite file here)
    handler_batch_1000_logged: Percentiles
    parts_us: dict[str, float]        # median cost of each step for one record, microseconds


def measure_floor(scorer: Any, records: Sequence[dict[str, Any]], n: int, log_db: Path) -> FloorResult:
    from models.attribution import Attribution
    from serving.schemas import RECORD_MODELS, ReasonsMode
    from serving.scoring import log_entries, score_batch, score_records, score_response
    from stores.engine import make_engine
    from stores.migrate import upgrade
    from stores.score_insert import ScoreInsert

    artifact = scorer.artifact
    singles = [[r] for r in records[:200]]
    batch = list(records[:1000])
    it = iter(range(10**12))

    def one() -> list[dict[str, Any]]:
        return singles[next(it) % len(singles)]

    def predict_one() -> None:
        artifact.score_records(one(), num_threads=1)

    def reasons_one() -> None:
        b = artifact.score_records(one(), num_threads=1)
        scorer.reasons(b.matrix[[0]], top_k=3)

    def predict_batch() -> None:
        artifact.score_records(batch, num_threads=1)

    def handler(recs: list[dict[str, Any]], mode: ReasonsMode) -> None:
        validated = [RECORD_MODELS["listing"].model_validate(r) for r in recs]
        score_records(scorer, [v.model_dump() for v in validated], mode, 3).model_dump_json()

    engine = make_engine(f"sqlite:///{log_db}")
    upgrade(engine)
    insert = ScoreInsert(engine)

    def handler_logged(recs: list[dict[str, Any]]) -> None:
        validated = [RECORD_MODELS["listing"].model_validate(r) for r in recs]
        scored = score_batch(scorer, [v.model_dump() for v in validated])
        with engine.begin() as connection:
            insert.insert(connection, log_entries(scorer, scored, "champion", True, "r", datetime.now(UTC)))
        score_response(scorer, scored, ReasonsMode.NONE, 3).model_dump_json()

    # step costs for one record, to see where the time goes
    now = datetime.now(UTC)
    rec = records[0]
    validated = RECORD_MODELS["listing"].model_validate(rec)
    dumped = validated.model_dump()
    b1 = artifact.score_records([dumped], num_threads=1)
    from features import columns_from_records

    cols = columns_from_records([dumped], artifact.feature_set)
    matrix = artifact.encoder.transform(cols)
    response = score_records(scorer, [dumped], ReasonsMode.NONE, 3)
    parts = {
        "validate record (pydantic)": time_calls(lambda: RECORD_MODELS["listing"].model_validate(rec), n),
        "model_dump()": time_calls(validated.model_dump, n),
        "record → raw columns": time_calls(lambda: columns_from_records([dumped], artifact.feature_set), n),
        "features (encoder.transform)": time_calls(lambda: artifact.encoder.transform(cols), n),
        "booster.predict, 1 thread": time_calls(lambda: artifact.predict_margin(matrix, num_threads=1), n),
        "pred_contrib, 1 thread": time_calls(
            lambda: artifact.booster.predict(matrix, pred_contrib=True, num_threads=1), n),
        "path attribution, 1 row": time_calls(
            lambda: artifact.contributions(matrix, num_threads=1, method=Attribution.PATH), n),
        f"reasons() top-3 as served ({scorer.attribution.value})": time_calls(
            lambda: scorer.reasons(b1.matrix[[0]], top_k=3), n),
        "log_entries() (scoring log rows, as the service)": time_calls(
            lambda: log_entries(scorer, b1, "champion", True, "r", now), n),
        "score_records() response build": time_calls(
            lambda: score_records(scorer, [dumped], ReasonsMode.NONE, 3), n),
        "response JSON (model_dump_json)": time_calls(response.model_dump_json, n),
    }
    return FloorResult(
        single=time_calls(predict_one, n),
        single_reasons=time_calls(reasons_one, n),
        batch_1000=time_calls(predict_batch, max(20, n // 50), warmup=3),
        handler_single=time_calls(lambda: handler(one(), ReasonsMode.NONE), n),
        handler_reasons=time_calls(lambda: handler(one(), ReasonsMode.ALL), n),
        handler_batch_1000=time_calls(lambda: handler(batch, ReasonsMode.NONE), max(20, n // 50), warmup=3),
        handler_batch_1000_logged=time_calls(lambda: handler_logged(batch), max(20, n // 50), warmup=3),
        parts_us={k: v.p50_ms * 1000.0 for k, v in parts.items()},
    )
