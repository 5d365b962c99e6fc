"""A generated (or loaded) data set in memory: the core tables, the entity types beyond them, the manifest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from synthetic.schema import TABLES


@dataclass(frozen=True)
class EntityTables:
    """One extension entity type's generated records and truth, with the dtypes of their columns."""

    records: pd.DataFrame
    truth: pd.DataFrame
    columns: Mapping[str, str]
    truth_columns: Mapping[str, str]



@dataclass
class MarketplaceData:
    """One generated (or loaded) data set: the five tables of docs/data-contract.md plus the manifest.

    When loaded with ``read_dataset(..., with_truth=False)`` the two truth frames are empty (right columns
    and dtypes, no rows) and ``manifest["truth_loaded"]`` is False.
    """

    accounts: pd.DataFrame
    account_identifiers: pd.DataFrame
    listings: pd.DataFrame
    account_truth: pd.DataFrame
    listing_truth: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, EntityTables] = field(default_factory=dict)
    """Entity types beyond the core, by name (`synthetic.extensions`)."""

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in TABLES}
