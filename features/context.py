"""Context from linked entities and the one account-age rule.

A listing's records carry its seller's static facts (when the account was created, its country and
verification), joined in from the accounts table by the link the entity registry declares
(`triage.entities`: `Link("seller_id", "account", {...})`). Training, batch scoring, the reports and the
Dask path all join through `join_context`, so they see the same columns under the same names.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.schema import RawColumns
from triage.entities import ENTITIES

SECONDS_PER_DAY = 86_400.0


def context_columns(entity: str) -> dict[str, list[str]]:
    """Per linked entity type, the columns its table must provide (its id first) for `join_context`."""
    out: dict[str, list[str]] = {}
    for link in ENTITIES.get(entity).links:
        id_field = ENTITIES.scored(link.entity).feature_set().id_field
        out.setdefault(link.entity, [id_field])
        out[link.entity] += [c for c in link.columns if c not in out[link.entity]]
    return out


def joined_names(entity: str) -> set[str]:
    """The columns `join_context` adds to an entity's records (a caller that joins them need not read them)."""
    return {name for link in ENTITIES.get(entity).links for name in link.columns.values()}


def join_context(frame: pd.DataFrame, entity: str, linked: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """`frame` (records of `entity`) with each linked entity's context columns, matched on the link field.

    Only static facts are linked (no history that could postdate the record). A linked id that is not in
    the linked table leaves the context missing; a linked table with a repeated id keeps its first row.
    """
    for link in ENTITIES.get(entity).links:
        if link.entity not in linked:
            raise KeyError(f"{entity} records link to {link.entity} by {link.by!r}: give the {link.entity} table")
        id_field = ENTITIES.scored(link.entity).feature_set().id_field
        table = linked[link.entity]
        context = table.drop_duplicates(id_field, keep="first")[[id_field, *link.columns]]
        context = context.rename(columns={id_field: link.by, **link.columns})
        frame = frame.drop(columns=[c for c in link.columns.values() if c in frame.columns])
        frame = frame.merge(context, on=link.by, how="left", validate="many_to_one")
    return frame


def account_age_days(columns: RawColumns, entity: str) -> np.ndarray:
    """Age in days of the account behind each record when it was scored (the registry's `AgeRule`: the
    seller's age at listing time for listings, the account's age at observation for accounts); NaN when
    unknown. The one definition: features, the rules baseline and the reports' age bands all use it."""
    rule = ENTITIES.get(entity).age
    if rule is None:
        raise ValueError(f"entity {entity!r} declares no account-age rule")
    return (np.asarray(columns[rule.at], dtype=np.float64) - np.asarray(columns[rule.born], dtype=np.float64)) \
        / SECONDS_PER_DAY
