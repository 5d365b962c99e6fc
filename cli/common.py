"""What every command shares: the entity option (choices from the entity registry), one-line errors, tables.

Commands import their work inside the command function: `triage --help` and every command start without
loading MLflow, LightGBM, Dask or BentoML until they are needed (pyproject.toml exempts `cli/` from the
import-at-top-level rule for this reason).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from triage.entities import ENTITIES

F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """A problem the user can fix; printed as one line without a traceback."""


def check_entity(entity: str) -> str:
    """`entity` if it is a scored entity type of the registry, else a one-line error naming the choices."""
    if entity not in ENTITIES.scored_names():
        choices = " or ".join(repr(name) for name in ENTITIES.scored_names())
        raise UserError(f"--entity must be {choices}, got {entity!r}")
    return entity


def _entity_help() -> str:
    return " or ".join(ENTITIES.scored_names())


EntityOption = Annotated[str, typer.Option("--entity", "-e", help=f"Entity type: {_entity_help()}")]
DataOption = Annotated[Path, typer.Option("--data", "-d", help="Data set folder (see docs/data-contract.md)")]


def one_line_errors(func: F) -> F:
    """Errors a user can fix become one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException
        from pydantic import ValidationError

        from models.registry import ModelNotFoundError

        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            typer.echo(f"error: {where}: {first['msg']}", err=True)
        except (UserError, FileNotFoundError, ValueError, LookupError, ModelNotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
        except MlflowException as exc:
            typer.echo(f"error: MLflow: {exc.message}", err=True)
        raise typer.Exit(2)

    return wrapper  # type: ignore[return-value]


def plain(value: object) -> str:
    """A value as a person reads it in a table: enums by value, times in ISO 8601, floats briefly."""
    if value is None:
        return "-"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={plain(v)}" for k, v in value.items())
    return str(value)


def print_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str], empty: str = "(none)") -> None:
    """A plain-text table with a header row and aligned columns."""
    if not rows:
        typer.echo(empty)
        return
    cells = [[plain(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
