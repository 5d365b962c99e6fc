"""A small client for the scoring API, for queue systems and the demo: frames or records in, results out."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
import pandas as pd

from features import FeatureSet, FieldKind
from serving.schemas import MAX_RECORDS_PER_REQUEST, score_route
from triage.entities import ENTITIES


def records_for_api(frame: pd.DataFrame, feature_set: FeatureSet) -> list[dict[str, Any]]:
    """The frame's raw fields as JSON-ready records: ISO times, missing values left out."""
    fields = [f for f in feature_set.inputs if f.name in frame.columns]
    records: list[dict[str, Any]] = []
    for row in frame[[f.name for f in fields]].itertuples(index=False, name=None):
        record: dict[str, Any] = {}
        for raw, value in zip(fields, row, strict=True):
            # None, NaN, NaT and pandas' NA (nullable Int64/string columns) are all "missing"
            if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
                continue
            if raw.kind is FieldKind.TIME:
                value = pd.Timestamp(value).isoformat() if not isinstance(value, datetime) else value.isoformat()
            elif raw.kind is FieldKind.INTEGER:
                value = int(value)
            elif raw.kind is FieldKind.NUMBER:
                value = float(value)
            else:
                value = str(value)
            record[raw.name] = value
        records.append(record)
    return records


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ScoringClient:
    def __init__(
        self, base_url: str, timeout: float = 30.0, client: httpx.Client | None = None, api_key: str | None = None
    ):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(base_url=base_url, timeout=timeout, headers=headers)

    def __enter__(self) -> ScoringClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def score(
        self, entity: str, records: Sequence[Mapping[str, Any]], reasons: str = "queued", top_reasons: int = 3
    ) -> list[dict[str, Any]]:
        """Score any number of records, in requests of at most the API's limit; returns the results."""
        key = ENTITIES.scored(entity).plural
        results: list[dict[str, Any]] = []
        for chunk in _chunks(records, MAX_RECORDS_PER_REQUEST):
            response = self._client.post(
                score_route(entity), json={key: list(chunk), "reasons": reasons, "top_reasons": top_reasons}
            )
            response.raise_for_status()
            body = response.json()
            for result in body["results"]:
                result["model_version"] = body["model"]["version"]
            results.extend(body["results"])
        return results
