"""Tables and Markdown for the closed loop's reports (retrain, shadow comparison, alias history)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from stores.alias_history import AliasPeriod


def markdown_table(frame: pd.DataFrame, float_format: str = "{:.4f}") -> str:
    """A GitHub markdown table (pandas' to_markdown needs `tabulate`, which the project does not ship)."""
    index_names = ["" if n is None else str(n) for n in frame.index.names]
    header = [*index_names, *map(str, frame.columns)]

    def cell(value: object) -> str:
        if isinstance(value, float | np.floating):
            return float_format.format(value) if math.isfinite(float(value)) else "n/a"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for key, row in frame.iterrows():
        keys = key if isinstance(key, tuple) else (key,)
        lines.append("| " + " | ".join([*map(cell, keys), *map(cell, row.tolist())]) + " |")
    return "\n".join(lines)


def finite(metrics: Mapping[str, float]) -> dict[str, float]:
    # MLflow would store NaN, but a NaN metric reads as a broken run in the UI: leave it out instead
    return {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}


def alias_periods_table(periods: Sequence[AliasPeriod]) -> pd.DataFrame:
    rows = [{"alias": p.alias, "version": p.version, "from": p.start.isoformat(),
             "until": "now" if p.end is None else p.end.isoformat(), "set_by": p.set_by, "reason": p.reason}
            for p in periods]
    return pd.DataFrame(rows, columns=["alias", "version", "from", "until", "set_by", "reason"])


def alias_periods_markdown(model_name: str, periods: Sequence[AliasPeriod]) -> str:
    table = alias_periods_table(periods)
    body = markdown_table(table.set_index("alias")) if len(table) else "_no alias moves recorded_"
    return f"## Alias history: {model_name}\n\n{body}\n"
