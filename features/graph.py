"""Account groups and neighbour features over a link graph (shared identifiers, or an external edge list).

Three layers, each usable alone:

* `LinkGraph`: a sparse, symmetric account × account adjacency built from shared identifiers (hub
  identifiers ignored) or from an edge list, with its connected components (`Groups`).
* `GraphSnapshot`: the graph plus, per account, the numeric signals, creation and observation times and
  the observed label with the time it became known. Persisted as a folder, loaded at service start-up.
* `enrich_with_graph`: raw columns in, new raw graph columns out. The same function serves a whole
  training frame and a single record at serving time; every aggregate is point-in-time: a scoring row
  with time `t` only sees accounts created by `t`, signals observed by `t` and labels known by `t`.

Times are epoch seconds (float64) as in `features.schema.RawColumns`. In snapshot arrays NaN means
"no time": a NaN creation or observation time counts as always in the past, a NaN label time as never
known. A NaN scoring time counts as "now" (everything in the snapshot is visible).

Known approximation: group membership (connected components) is taken from the snapshot graph as a
whole; only the counts are restricted to accounts existing at `t`. A link through an account created
after `t` may therefore join two groups earlier than it really did. Identifier tables carry no link
times, so nothing finer is possible from the data contract.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from features.schema import FeatureKind, FeatureSet, FeatureSpec, FieldKind, RawColumns, RawField

SECONDS_PER_DAY = 86_400.0

DEFAULT_MAX_ACCOUNTS_PER_IDENTIFIER = 50
"""Identifiers held by more accounts than this are ignored. Fraud rings in practice (and in the generator)
reuse a device or card across a handful to a few dozen accounts; a value shared by hundreds is a public
Wi-Fi, a carrier NAT range, a marketplace warehouse address or a payment aggregator, and linking through it
would glue thousands of honest accounts into one group."""

DEFAULT_IDENTIFIER_WEIGHTS: Mapping[str, float] = MappingProxyType(
    # a shared device or payment instrument is strong evidence of common control; a shared address is
    # also what households and offices look like; an IP range is shared by whole neighbourhoods
    {"device": 1.0, "payment": 1.0, "address": 0.5, "ip_range": 0.25}
)

_STATS = ("mean", "max", "std")
_GROUP_PREFIX = "G-"
SOLO = "solo"
"""The group label of an account linked to no other account."""
_SNAPSHOT_FORMAT_VERSION = 1
_SIGNAL_PREFIX = "signal__"
# upper bound on the entries of one block of two-hop walks held in memory at once
_HOP2_ENTRY_BUDGET = 4_000_000

IdentifierWeights = Mapping[str, float]


def to_epoch_seconds(values: Sequence[Any] | np.ndarray | pd.Series) -> np.ndarray:
    """Timestamps (or already numeric epoch seconds) to float64 epoch seconds, NaN for missing."""
    array = np.asarray(values)
    if array.dtype.kind in "fiu":
        return array.astype(np.float64)
    stamps = pd.to_datetime(pd.Series(array), utc=True).dt.tz_convert(None).dt.as_unit("us").to_numpy()
    out = stamps.view(np.int64) / 1e6
    out[np.isnat(stamps)] = np.nan
    return out


# ------------------------------------------------------------------------------------------------------
# Link graph and groups
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Groups:
    """Connected components of a link graph. `group_id` is "G-" + the smallest member id: readable and
    stable across snapshot rebuilds as long as that member stays in the group."""

    ids: np.ndarray
    labels: np.ndarray
    sizes: np.ndarray
    group_ids: np.ndarray

    @classmethod
    def of(cls, ids: np.ndarray, adjacency: sp.csr_array) -> Groups:
        _, labels = connected_components(adjacency, directed=False)
        labels = labels.astype(np.int64)
        sizes = np.bincount(labels).astype(np.int64)
        # the smallest member id per component: walk ids in sorted order, keep each component's first
        order = np.argsort(np.asarray(ids, dtype=str), kind="stable")
        first = np.empty(len(sizes), dtype=np.int64)
        first[labels[order][::-1]] = order[::-1]
        group_ids = np.array([_GROUP_PREFIX + str(ids[i]) for i in first], dtype=object)
        return cls(ids=ids, labels=labels, sizes=sizes, group_ids=group_ids)

    @property
    def count(self) -> int:
        return len(self.sizes)

    def frame(self) -> pd.DataFrame:
        """One row per account: account_id, group_id, group_size."""
        return pd.DataFrame(
            {"account_id": self.ids, "group_id": self.group_ids[self.labels], "group_size": self.sizes[self.labels]}
        )

    def labels_of(self, solo: str = SOLO) -> pd.Series:
        """Account id → its group id, or `solo` for an account linked to nobody (a group of one)."""
        group = self.group_ids[self.labels]
        return pd.Series(np.where(self.sizes[self.labels] >= 2, group, solo), index=pd.Index(self.ids, dtype=object))

    def members(self, group_id: str) -> list[str]:
        hits = np.flatnonzero(self.group_ids == group_id)
        if len(hits) == 0:
            raise KeyError(group_id)
        return sorted(str(v) for v in self.ids[self.labels == hits[0]])


@dataclass(frozen=True, eq=False)
class LinkGraph:
    """Accounts as nodes; a symmetric, non-negative weighted adjacency with an empty diagonal.

    When built from identifiers it keeps the node × identifier incidence (hubs already dropped), so an
    account that is not in the graph can still be linked at serving time from its own identifiers.
    """

    ids: np.ndarray
    adjacency: sp.csr_array
    incidence: sp.csr_array | None = None
    identifier_keys: pd.DataFrame | None = None  # identifier_type, identifier, weight per incidence column

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.adjacency.shape != (n, n):
            raise ValueError(f"adjacency shape {self.adjacency.shape} does not match {n} nodes")
        if (self.incidence is None) != (self.identifier_keys is None):
            raise ValueError("incidence and identifier_keys go together")
        if (self.incidence is not None and self.identifier_keys is not None
                and self.incidence.shape != (n, len(self.identifier_keys))):
            raise ValueError("incidence shape does not match the nodes and identifier keys")

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_identifiers(
        cls,
        identifiers: pd.DataFrame,
        accounts: Sequence[str] | np.ndarray | pd.Series,
        type_weights: IdentifierWeights | None = DEFAULT_IDENTIFIER_WEIGHTS,
        max_accounts_per_identifier: int | None = DEFAULT_MAX_ACCOUNTS_PER_IDENTIFIER,
    ) -> LinkGraph:
        """Link accounts that share an identifier (columns account_id, identifier_type, identifier).

        The link weight of two accounts is the sum over the identifiers they share of the identifier type's
        weight (`type_weights`; types it does not name weigh 1, weight 0 drops a type; None weighs all 1).
        Identifiers held by more than `max_accounts_per_identifier` accounts of the whole table are
        ignored (None keeps all). Identifier rows of accounts not in `accounts` are dropped after counting.
        """
        ids = np.array([str(a) for a in accounts], dtype=object)
        index = pd.Index(ids)
        if not index.is_unique:
            raise ValueError("accounts must be unique: one node per account")
        frame = identifiers[["account_id", "identifier_type", "identifier"]].astype(str).drop_duplicates()
        key = frame["identifier_type"] + "\x1f" + frame["identifier"]
        holders = key.map(key.value_counts())
        # identifiers held by one account link nobody yet, but are kept: an account arriving later with the
        # same value links to that holder
        keep = pd.Series(True, index=frame.index)
        if max_accounts_per_identifier is not None:
            keep &= holders <= max_accounts_per_identifier
        types = frame["identifier_type"]
        weight = (
            types.map(lambda t: float(type_weights.get(t, 1.0))) if type_weights is not None
            else pd.Series(1.0, index=frame.index)
        )
        rows = index.get_indexer(pd.Index(frame["account_id"]))
        keep &= (weight > 0) & (rows >= 0)
        frame, key, weight, rows = frame[keep], key[keep], weight[keep], rows[keep.to_numpy()]
        codes, uniques = pd.factorize(key)
        first = pd.Series(np.arange(len(key))).groupby(codes).first().to_numpy()
        keys = pd.DataFrame({
            "identifier_type": frame["identifier_type"].to_numpy()[first],
            "identifier": frame["identifier"].to_numpy()[first],
            "weight": weight.to_numpy(dtype=np.float64)[first],
        })
        incidence = sp.csr_array(
            (np.ones(len(codes)), (rows, codes)), shape=(len(ids), len(uniques)), dtype=np.float64
        )
        adjacency = _without_diagonal(incidence @ sp.diags_array(keys["weight"].to_numpy()) @ incidence.T)
        return cls(ids=ids, adjacency=adjacency, incidence=incidence, identifier_keys=keys)

    @classmethod
    def groups_from_identifiers(cls, identifiers: pd.DataFrame, **options: Any) -> Groups:
        """The groups of every account in an identifier table, by the same rules as the graph features (hub
        identifiers ignored): the one group builder that features, the queue and the reports share."""
        accounts = identifiers["account_id"].astype(str).drop_duplicates().to_numpy()
        return cls.from_identifiers(identifiers, accounts, **options).groups

    @classmethod
    def from_edges(
        cls,
        edges: np.ndarray,
        n_nodes: int,
        weights: np.ndarray | None = None,
        ids: Sequence[str] | np.ndarray | None = None,
    ) -> LinkGraph:
        """An external graph: `edges` (m × 2 node positions), each undirected edge listed once; a pair
        listed several times gets the summed weight (edge counts). Self-loops are dropped. Node ids default
        to "0".."n-1"."""
        edges = np.asarray(edges, dtype=np.int64)
        if edges.ndim != 2 or edges.shape[1] != 2:
            raise ValueError("edges must be an (m, 2) array")
        if len(edges) and (edges.min() < 0 or edges.max() >= n_nodes):
            raise ValueError("edge endpoints must be node positions in [0, n_nodes)")
        w = np.ones(len(edges)) if weights is None else np.asarray(weights, dtype=np.float64)
        half = sp.coo_array((w, (edges[:, 0], edges[:, 1])), shape=(n_nodes, n_nodes)).tocsr()
        adjacency = _without_diagonal(half + half.T)
        node_ids = (
            np.array([str(i) for i in range(n_nodes)], dtype=object) if ids is None
            else np.array([str(i) for i in ids], dtype=object)
        )
        return cls(ids=node_ids, adjacency=adjacency)

    def degree_normalised(self, power: float = 0.5) -> LinkGraph:
        """The same links with weight w_ij / (d_i · d_j)^power (d: weighted degree). power=0.5 is the
        symmetric normalisation of graph convolutions; with power=1 a row's mean is weighted by 1/d_j, so
        a link to a specific, sparsely linked account counts more than one to a busy hub. The identifier
        incidence is not carried over (its weights would not be normalised): accounts outside the graph get
        no links from a normalised graph."""
        degree = np.asarray(self.adjacency.sum(axis=1)).ravel()
        scale = np.where(degree > 0, np.power(np.maximum(degree, 1e-300), -power), 0.0)
        adjacency = sp.csr_array(sp.diags_array(scale) @ self.adjacency @ sp.diags_array(scale))
        return LinkGraph(ids=self.ids, adjacency=adjacency)

    # -- queries -----------------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.ids)

    @cached_property
    def index(self) -> pd.Index:
        return pd.Index(self.ids)

    @cached_property
    def groups(self) -> Groups:
        return Groups.of(self.ids, self.adjacency)

    def positions(self, ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Node positions of the given ids, -1 for ids not in the graph."""
        return np.asarray(self.index.get_indexer(pd.Index(np.asarray(ids, dtype=object))), dtype=np.int64)

    def degree(self) -> np.ndarray:
        """Number of linked accounts per node (unweighted)."""
        return np.diff(self.adjacency.indptr).astype(np.float64)

    def link_rows(
        self, ids: Sequence[str] | np.ndarray, identifiers: pd.DataFrame | None = None
    ) -> sp.csr_array:
        """Link weights (rows × nodes) of the given accounts: their adjacency row when they are in the
        graph, otherwise the links their own identifiers (same columns as for `from_identifiers`) make
        to graph nodes. Without identifiers, an unknown account has no links."""
        ids = np.asarray(ids, dtype=object)
        pos = self.positions(ids)
        known_rows = np.flatnonzero(pos >= 0)
        # selecting rows through a sparse selector keeps this one vectorised product for any mix of rows
        selector = sp.csr_array(
            (np.ones(len(known_rows)), (known_rows, pos[known_rows])), shape=(len(ids), self.n_nodes)
        )
        rows = selector @ self.adjacency
        unknown = pos < 0
        if identifiers is not None and unknown.any() and self.incidence is not None:
            rows = rows + self._identifier_links(ids, unknown, identifiers)
        return sp.csr_array(rows)

    def _identifier_links(self, ids: np.ndarray, unknown: np.ndarray, identifiers: pd.DataFrame) -> sp.csr_array:
        assert self.incidence is not None and self.identifier_keys is not None
        frame = identifiers[["account_id", "identifier_type", "identifier"]].astype(str).drop_duplicates()
        row_of = pd.Series(np.flatnonzero(unknown), index=pd.Index(ids[unknown]))
        row_of = row_of[~row_of.index.duplicated()]
        keys = self.identifier_keys
        key_index = pd.Index(keys["identifier_type"] + "\x1f" + keys["identifier"])
        cols = key_index.get_indexer(pd.Index(frame["identifier_type"] + "\x1f" + frame["identifier"]))
        rows = row_of.reindex(frame["account_id"]).to_numpy()
        ok = (cols >= 0) & ~np.isnan(rows)
        held = sp.csr_array(
            (np.ones(int(ok.sum())), (rows[ok].astype(np.int64), cols[ok])),
            shape=(len(ids), len(keys)),
        )
        held.data[:] = 1.0  # the same identifier sent twice still counts once
        return sp.csr_array(held @ sp.diags_array(keys["weight"].to_numpy()) @ self.incidence.T)


def _without_diagonal(matrix: Any) -> sp.csr_array:
    out = sp.csr_array(matrix)
    out.setdiag(0.0)
    out.eliminate_zeros()
    out.sort_indices()
    return out


# ------------------------------------------------------------------------------------------------------
# Feature configuration and declarations
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphFeatureConfig:
    """Which graph columns `enrich_with_graph` produces. Stored with the snapshot, so training and
    serving compute the same columns.

    signals: per-account numeric signals aggregated over neighbours (feature names of the entity's
        FeatureSet, or raw column names).
    hop1_stats / hop2_stats: aggregates over direct neighbours / over two-step walks (self excluded):
        any of "mean", "max", "std", weighted by link weight (walk weight for two hops).
    label_hops: hops at which the share of neighbours with a confirmed violation is computed.
    new_account_days: an account younger than this at the scoring time counts as new.
    """

    signals: tuple[str, ...] = ("chargeback_rate", "refund_rate", "account_age_days")
    hop1_stats: tuple[str, ...] = ("mean",)
    hop2_stats: tuple[str, ...] = ("mean",)
    label_hops: tuple[int, ...] = (1,)
    new_account_days: float = 30.0

    def __post_init__(self) -> None:
        for stat in (*self.hop1_stats, *self.hop2_stats):
            if stat not in _STATS:
                raise ValueError(f"unknown statistic {stat!r}: expected one of {_STATS}")
        if set(self.label_hops) - {1, 2}:
            raise ValueError("label_hops may contain 1 and 2 only")
        if len(set(self.signals)) != len(self.signals):
            raise ValueError("signals must be unique")

    def output_names(self) -> tuple[str, ...]:
        names = ["link_degree", "group_size", "group_new_account_share"]
        for hop in sorted(self.label_hops):
            prefix = _prefix(hop)
            names += [f"{prefix}_violation_share", f"{prefix}_labelled_violation_share"]
            if hop == 1:
                names.append(f"{prefix}_violation_count")
        for hop, stats in ((1, self.hop1_stats), (2, self.hop2_stats)):
            names += [_signal_name(hop, s, stat) for s in self.signals for stat in stats]
        return tuple(names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "signals": list(self.signals), "hop1_stats": list(self.hop1_stats), "hop2_stats": list(self.hop2_stats),
            "label_hops": list(self.label_hops), "new_account_days": self.new_account_days,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphFeatureConfig:
        return cls(
            signals=tuple(data["signals"]), hop1_stats=tuple(data["hop1_stats"]),
            hop2_stats=tuple(data["hop2_stats"]), label_hops=tuple(int(h) for h in data["label_hops"]),
            new_account_days=float(data["new_account_days"]),
        )


def _prefix(hop: int) -> str:
    return "neighbour" if hop == 1 else "neighbour2"


def _signal_name(hop: int, signal: str, stat: str) -> str:
    base = f"{_prefix(hop)}_{signal}"
    return base if stat == "mean" else f"{base}_{stat}"


_FIXED_TEXTS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "link_degree": ("Accounts linked through shared identifiers",
                    "Linked to {value:.0f} other accounts through shared identifiers"),
    "group_size": ("Size of the linked account group", "In a group of {value:.0f} linked accounts"),
    "group_new_account_share": ("Share of the linked group younger than the new-account age",
                                "{value:.0%} of the linked group are new accounts"),
    "neighbour_violation_share": ("Share of linked accounts with a confirmed violation",
                                  "{value:.0%} of linked accounts had a confirmed violation"),
    "neighbour_labelled_violation_share": ("Confirmed violations among linked accounts already reviewed",
                                           "{value:.0%} of reviewed linked accounts were violations"),
    "neighbour_violation_count": ("Linked accounts with a confirmed violation",
                                  "Linked to {value:.0f} accounts with a confirmed violation"),
    "neighbour2_violation_share": ("Share of two-step linked accounts with a confirmed violation",
                                   "{value:.0%} of accounts two links away had a confirmed violation"),
    "neighbour2_labelled_violation_share": ("Confirmed violations among reviewed accounts two links away",
                                            "{value:.0%} of reviewed accounts two links away were violations"),
})


def graph_raw_fields(config: GraphFeatureConfig = GraphFeatureConfig()) -> tuple[RawField, ...]:
    """The graph columns as optional raw inputs of an entity FeatureSet (filled by `enrich_with_graph`)."""
    return tuple(
        RawField(name, FieldKind.NUMBER, _describe(name)[0], required=False, example=0.0, computed=True)
        for name in config.output_names()
    )


def graph_config_of(feature_set: FeatureSet) -> GraphFeatureConfig | None:
    """The feature set's link-graph config, if its entity type has graph features."""
    config = feature_set.graph
    if config is not None and not isinstance(config, GraphFeatureConfig):
        raise TypeError(f"{feature_set.entity}'s graph is a {type(config).__name__}, not a GraphFeatureConfig")
    return config


def graph_feature_specs(config: GraphFeatureConfig = GraphFeatureConfig()) -> tuple[FeatureSpec, ...]:
    """Identity features reading the graph raw columns, with the reason texts a reviewer reads."""
    return tuple(
        FeatureSpec(name, FeatureKind.NUMERIC, _describe(name)[0], _describe(name)[1], (name,), _identity(name))
        for name in config.output_names()
    )


def _identity(name: str) -> Any:
    def compute(c: RawColumns) -> np.ndarray:
        return np.asarray(c[name], dtype=np.float64)

    return compute


def _describe(name: str) -> tuple[str, str]:
    if name in _FIXED_TEXTS:
        return _FIXED_TEXTS[name]
    hop_text = "two links away" if name.startswith("neighbour2_") else "linked"
    rest = name.split("_", 1)[1]
    stat = next((s for s in ("max", "std") if rest.endswith(f"_{s}")), "mean")
    signal = rest if stat == "mean" else rest[: -len(stat) - 1]
    word = {"mean": "average", "max": "highest", "std": "spread of"}[stat]
    return (f"{word.capitalize()} {signal} of accounts {hop_text}",
            f"Accounts {hop_text}: {word} {signal} {{value:.3g}}")


# ------------------------------------------------------------------------------------------------------
# Snapshot
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GraphSnapshot:
    """The link graph with what is known per account, everything aligned to `graph.ids`."""

    graph: LinkGraph
    signals: Mapping[str, np.ndarray]
    created_at: np.ndarray
    observed_at: np.ndarray
    label: np.ndarray
    label_available_at: np.ndarray
    config: GraphFeatureConfig = field(default_factory=GraphFeatureConfig)
    id_field: str = "account_id"
    time_field: str = "observed_at"
    created_field: str | None = "created_at"

    def __post_init__(self) -> None:
        n = self.graph.n_nodes
        arrays = {"created_at": self.created_at, "observed_at": self.observed_at, "label": self.label,
                  "label_available_at": self.label_available_at, **self.signals}
        for name, values in arrays.items():
            if len(values) != n:
                raise ValueError(f"snapshot array {name!r} has {len(values)} values for {n} nodes")
        missing = set(self.config.signals) - set(self.signals)
        if missing:
            raise ValueError(f"snapshot lacks signals {sorted(missing)} named in its config")

    @classmethod
    def build(
        cls,
        graph: LinkGraph,
        node_ids: Sequence[str] | np.ndarray,
        signals: Mapping[str, np.ndarray],
        *,
        created_at: np.ndarray | None = None,
        observed_at: np.ndarray | None = None,
        label: np.ndarray | None = None,
        label_available_at: np.ndarray | None = None,
        config: GraphFeatureConfig = GraphFeatureConfig(),
        id_field: str = "account_id",
        time_field: str = "observed_at",
        created_field: str | None = "created_at",
    ) -> GraphSnapshot:
        """Align per-account arrays given in `node_ids` order to the graph; graph nodes without a row get
        NaN signals and times and label 0 (never known). Times may be epoch seconds or timestamps."""
        ids = np.array([str(i) for i in node_ids], dtype=object)
        if not pd.Index(ids).is_unique:
            raise ValueError("node_ids must be unique: one snapshot row per account")
        source = pd.Index(ids).get_indexer(graph.ids)
        found = source >= 0

        def align(values: np.ndarray | None, fill: float) -> np.ndarray:
            out = np.full(graph.n_nodes, fill, dtype=np.float64)
            if values is not None:
                out[found] = np.asarray(values, dtype=np.float64)[source[found]]
            return out

        def align_time(values: np.ndarray | None) -> np.ndarray:
            return align(None if values is None else to_epoch_seconds(values), np.nan)

        return cls(
            graph=graph,
            signals={name: align(signals[name], np.nan) for name in config.signals},
            created_at=align_time(created_at),
            observed_at=align_time(observed_at),
            label=align(label, 0.0).astype(np.int8),
            label_available_at=align_time(label_available_at),
            config=config, id_field=id_field, time_field=time_field, created_field=created_field,
        )

    def with_labels(self, label: np.ndarray, label_available_at: np.ndarray) -> GraphSnapshot:
        """The same snapshot with other (node-aligned) labels, e.g. only a training window's labels."""
        return replace(self, label=np.asarray(label, dtype=np.int8),
                       label_available_at=to_epoch_seconds(label_available_at))

    @cached_property
    def component_clock(self) -> _ComponentClock:
        # built once per snapshot: a request must not sort every account again
        return _ComponentClock(self.graph.groups.labels, self.created_at)

    def warm(self) -> GraphSnapshot:
        """Build the lazily computed indexes now (at service start-up rather than in the first request)."""
        _ = self.component_clock
        return self

    def known_by(self, cutoff: float) -> GraphSnapshot:
        """The snapshot as a model trained at `cutoff` (epoch seconds) ships it: labels that became known later
        are unknown (available never), so scoring a later window cannot see them."""
        available = np.asarray(self.label_available_at, dtype=np.float64)
        return replace(self, label_available_at=np.where(available <= cutoff, available, np.inf))

    # -- persistence -------------------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        """A folder: graph.npz (adjacency), nodes.parquet, snapshot.json, and for identifier graphs
        incidence.npz + identifiers.parquet (to link accounts that arrive after the snapshot)."""
        directory.mkdir(parents=True, exist_ok=True)
        sp.save_npz(directory / "graph.npz", self.graph.adjacency)
        nodes = pd.DataFrame({
            "node_id": self.graph.ids.astype(str), "created_at": self.created_at, "observed_at": self.observed_at,
            "label": self.label, "label_available_at": self.label_available_at,
            **{_SIGNAL_PREFIX + k: np.asarray(v, dtype=np.float64) for k, v in self.signals.items()},
        })
        nodes.to_parquet(directory / "nodes.parquet", index=False)
        has_identifiers = self.graph.incidence is not None and self.graph.identifier_keys is not None
        if self.graph.incidence is not None and self.graph.identifier_keys is not None:
            sp.save_npz(directory / "incidence.npz", self.graph.incidence)
            self.graph.identifier_keys.to_parquet(directory / "identifiers.parquet", index=False)
        manifest = {
            "format_version": _SNAPSHOT_FORMAT_VERSION, "config": self.config.to_dict(), "id_field": self.id_field,
            "time_field": self.time_field, "created_field": self.created_field, "nodes": self.graph.n_nodes,
            "links": int(self.graph.adjacency.nnz // 2), "identifiers": has_identifiers,
        }
        (directory / "snapshot.json").write_text(json.dumps(manifest, indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> GraphSnapshot:
        manifest_path = directory / "snapshot.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(f"graph snapshot is incomplete: {manifest_path} is missing")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format_version") != _SNAPSHOT_FORMAT_VERSION:
            raise ValueError(f"graph snapshot format {manifest.get('format_version')!r} is not supported")
        nodes = pd.read_parquet(directory / "nodes.parquet")
        incidence = keys = None
        if manifest["identifiers"]:
            incidence = sp.csr_array(sp.load_npz(directory / "incidence.npz"))
            keys = pd.read_parquet(directory / "identifiers.parquet")
        graph = LinkGraph(
            ids=nodes["node_id"].to_numpy(dtype=object),
            adjacency=sp.csr_array(sp.load_npz(directory / "graph.npz")),
            incidence=incidence, identifier_keys=keys,
        )
        signals = {c[len(_SIGNAL_PREFIX):]: nodes[c].to_numpy(dtype=np.float64)
                   for c in nodes.columns if c.startswith(_SIGNAL_PREFIX)}
        return cls(
            graph=graph, signals=signals,
            created_at=nodes["created_at"].to_numpy(dtype=np.float64),
            observed_at=nodes["observed_at"].to_numpy(dtype=np.float64),
            label=nodes["label"].to_numpy(dtype=np.int8),
            label_available_at=nodes["label_available_at"].to_numpy(dtype=np.float64),
            config=GraphFeatureConfig.from_dict(manifest["config"]), id_field=manifest["id_field"],
            time_field=manifest["time_field"], created_field=manifest["created_field"],
        )


def snapshot_from_entities(
    graph: LinkGraph,
    columns: RawColumns,
    feature_set: FeatureSet,
    label: np.ndarray | None = None,
    label_available_at: np.ndarray | pd.Series | None = None,
    config: GraphFeatureConfig = GraphFeatureConfig(),
    created_field: str | None = "created_at",
) -> GraphSnapshot:
    """A snapshot from an entity's raw columns (one row per account): signals are computed by the
    FeatureSet's own FeatureSpecs when a signal names a feature, else read as raw columns."""
    signals = {
        name: (feature_set.by_name[name].compute(columns) if name in feature_set.by_name else columns[name])
        for name in config.signals
    }
    created = columns[created_field] if created_field is not None and created_field in columns else None
    return GraphSnapshot.build(
        graph, columns[feature_set.id_field], signals, created_at=created,
        observed_at=columns[feature_set.time_field], label=label,
        label_available_at=None if label_available_at is None else np.asarray(to_epoch_seconds(label_available_at)),
        config=config, id_field=feature_set.id_field, time_field=feature_set.time_field, created_field=created_field,
    )


# ------------------------------------------------------------------------------------------------------
# Enrichment: one code path for a frame and for a single record
# ------------------------------------------------------------------------------------------------------


def enrich_with_graph(
    columns: RawColumns,
    snapshot: GraphSnapshot,
    as_of: np.ndarray | float | None = None,
    identifiers: pd.DataFrame | None = None,
) -> dict[str, np.ndarray]:
    """New raw graph columns (named by `snapshot.config.output_names()`) for the rows of `columns`.

    `as_of`: scoring times in epoch seconds (one per row, or one for all); default the rows'
    `snapshot.time_field` column. `identifiers`: the identifiers of accounts that are not in the snapshot
    (new at serving time); accounts in the snapshot use the snapshot's links.
    """
    config = snapshot.config
    ids = np.asarray(columns[snapshot.id_field], dtype=object)
    n = len(ids)
    t = _scoring_times(columns, snapshot, as_of, n)
    pos = snapshot.graph.positions(ids)
    links = snapshot.graph.link_rows(ids, identifiers)
    hop1 = _keep_entries(links, _entry_rows(links), lambda r, c: _at_or_before(snapshot.created_at[c], t[r]))

    out: dict[str, np.ndarray] = {"link_degree": np.diff(hop1.indptr).astype(np.float64)}
    own_created = (np.asarray(columns[snapshot.created_field], dtype=np.float64)
                   if snapshot.created_field is not None and snapshot.created_field in columns
                   else np.full(n, np.nan))
    out.update(_group_columns(snapshot, hop1, pos, t, own_created))
    if 1 in config.label_hops:
        out.update(_label_columns(snapshot, hop1, t, _prefix(1)))
    out.update(_signal_columns(snapshot, hop1, t, 1, config.hop1_stats))

    if config.hop2_stats or 2 in config.label_hops:
        out.update(_hop2_columns(snapshot, hop1, pos, t))
    return {name: out[name] for name in config.output_names()}


def _scoring_times(columns: RawColumns, snapshot: GraphSnapshot, as_of: np.ndarray | float | None,
                   n: int) -> np.ndarray:
    if as_of is None:
        t = np.asarray(columns[snapshot.time_field], dtype=np.float64)
    else:
        t = np.broadcast_to(np.asarray(as_of, dtype=np.float64), (n,)).copy()
    # no scoring time: score as of now, i.e. with everything the snapshot knows
    return np.where(np.isnan(t), np.inf, t)


def _at_or_before(times: np.ndarray, t: np.ndarray) -> np.ndarray:
    """times <= t, where a NaN time counts as always in the past."""
    return np.isnan(times) | (times <= t)


def _entry_rows(matrix: sp.csr_array) -> np.ndarray:
    return np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))


def _keep_entries(matrix: sp.csr_array, rows: np.ndarray, keep: Any) -> sp.csr_array:
    """Entries of a CSR matrix for which keep(row, column) holds (vectorised over entries)."""
    mask = keep(rows, matrix.indices)
    out = sp.csr_array((matrix.data * mask, matrix.indices, matrix.indptr), shape=matrix.shape)
    out.eliminate_zeros()
    return out


def _row_sums(rows: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(rows, weights=values, minlength=n)[:n]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _label_columns(snapshot: GraphSnapshot, weights: sp.csr_array, t: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
    # a neighbour's label counts only once it is known at the scoring row's time: never a later label
    n = weights.shape[0]
    rows, cols, w = _entry_rows(weights), weights.indices, weights.data
    available = snapshot.label_available_at[cols]
    known = ~np.isnan(available) & (available <= t[rows])
    violation = known & (snapshot.label[cols] == 1)
    # distinct accounts with a violation: a count a reviewer can check, given for direct links only
    violators = _row_sums(rows, violation.astype(np.float64), n) if prefix == _prefix(1) else None
    return _label_stats(_row_sums(rows, w, n), _row_sums(rows, w * known, n), _row_sums(rows, w * violation, n),
                        violators, prefix)


def _label_stats(total: np.ndarray, known: np.ndarray, violations: np.ndarray, violators: np.ndarray | None,
                 prefix: str) -> dict[str, np.ndarray]:
    out = {f"{prefix}_violation_share": _ratio(violations, total),
           f"{prefix}_labelled_violation_share": _ratio(violations, known)}
    if violators is not None:
        out[f"{prefix}_violation_count"] = violators
    return out


def _signal_columns(snapshot: GraphSnapshot, weights: sp.csr_array, t: np.ndarray, hop: int,
                    stats: Sequence[str]) -> dict[str, np.ndarray]:
    n = weights.shape[0]
    rows, cols = _entry_rows(weights), weights.indices
    # a neighbour's signals are as of its own observation time: usable only if that is not later
    visible = _at_or_before(snapshot.observed_at[cols], t[rows])
    out: dict[str, np.ndarray] = {}
    for signal in snapshot.config.signals:
        x = snapshot.signals[signal][cols]
        ok = visible & ~np.isnan(x)
        w = np.where(ok, weights.data, 0.0)
        x0 = np.where(ok, x, 0.0)
        w_sum, s1 = _row_sums(rows, w, n), _row_sums(rows, w * x0, n)
        s2 = _row_sums(rows, w * x0 * x0, n) if "std" in stats else None
        top = _row_max(weights.indptr, np.where(ok, x, -np.inf), n) if "max" in stats else None
        out.update(_signal_stats(hop, signal, stats, w_sum, s1, s2, top))
    return out


def _signal_stats(hop: int, signal: str, stats: Sequence[str], w_sum: np.ndarray, s1: np.ndarray,
                  s2: np.ndarray | None, top: np.ndarray | None) -> dict[str, np.ndarray]:
    mean = _ratio(s1, w_sum)
    out: dict[str, np.ndarray] = {}
    for stat in stats:
        name = _signal_name(hop, signal, stat)
        if stat == "mean":
            out[name] = mean
        elif stat == "std":
            assert s2 is not None
            second = _ratio(s2, w_sum)
            variance = second - mean * mean
            # E[x²] − E[x]² cancels to rounding noise when all values are equal: that spread is zero
            variance[variance <= 1e-12 * np.abs(second)] = 0.0
            out[name] = np.sqrt(variance)
        else:
            assert top is not None
            out[name] = top
    return out


def _row_max(indptr: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, -np.inf)
    nonempty = np.flatnonzero(np.diff(indptr) > 0)
    if len(nonempty):
        out[nonempty] = np.maximum.reduceat(values, indptr[nonempty])
    return np.where(np.isfinite(out), out, np.nan)


def _hop2_columns(snapshot: GraphSnapshot, hop1: sp.csr_array, pos: np.ndarray,
                  t: np.ndarray) -> dict[str, np.ndarray]:
    """Two-hop columns: aggregates over two-step walks (row → linked account → its linked account), the
    end account existing at the row's time and the row's own account excluded, weighted by walk weight."""
    config = snapshot.config
    n = len(pos)
    if n and np.all(t == t[0]) and "max" not in config.hop2_stats:
        return _hop2_uniform_time(snapshot, hop1, pos, float(t[0]))
    names = [name for name in config.output_names() if name.startswith("neighbour2_")]
    out = {name: np.full(n, np.nan) for name in names}
    for start, stop, walks in _hop2_blocks(snapshot, hop1, pos, t):
        block: dict[str, np.ndarray] = {}
        if 2 in config.label_hops:
            block.update(_label_columns(snapshot, walks, t[start:stop], _prefix(2)))
        block.update(_signal_columns(snapshot, walks, t[start:stop], 2, config.hop2_stats))
        for name in names:
            out[name][start:stop] = block[name]
    return out


def _hop2_uniform_time(snapshot: GraphSnapshot, hop1: sp.csr_array, pos: np.ndarray,
                       t: float) -> dict[str, np.ndarray]:
    """The same sums as the walk-by-walk path when every row has the same time (a single record at
    serving time, a batch scored now, a table without time): node masks no longer depend on the row, so
    sum over walks of v = hop1 @ (A @ v) minus the walks back to the row itself, without ever holding the
    walks (A² can have orders of magnitude more entries than A). Equality is tested."""
    config = snapshot.config
    adjacency = snapshot.graph.adjacency
    n = len(pos)
    known_rows = np.flatnonzero(pos >= 0)
    own = sp.csr_array((np.ones(len(known_rows)), (known_rows, pos[known_rows])), shape=(n, adjacency.shape[0]))
    back_to_self = np.asarray((hop1 * (own @ adjacency)).sum(axis=1)).ravel()  # Σ_k hop1[i,k]·A[k,i]
    exists = _at_or_before(snapshot.created_at, np.full(adjacency.shape[0], t)).astype(np.float64)

    def walk_sum(node_values: np.ndarray) -> np.ndarray:
        v = exists * node_values
        total = hop1 @ (adjacency @ v)
        own_part = np.zeros(n)
        own_part[known_rows] = back_to_self[known_rows] * v[pos[known_rows]]
        out = total - own_part
        # the subtraction leaves rounding noise where only walks back to the row exist
        out[np.abs(out) <= 1e-9 * np.maximum(np.abs(total), 1.0)] = 0.0
        return out

    out: dict[str, np.ndarray] = {}
    if 2 in config.label_hops:
        available = snapshot.label_available_at
        known = (~np.isnan(available) & (available <= t)).astype(np.float64)
        violation = known * (snapshot.label == 1)
        out.update(_label_stats(walk_sum(np.ones(len(known))), walk_sum(known), walk_sum(violation), None,
                                _prefix(2)))
    visible = _at_or_before(snapshot.observed_at, np.full(adjacency.shape[0], t))
    for signal in config.signals:
        x = snapshot.signals[signal]
        ok = (visible & ~np.isnan(x)).astype(np.float64)
        x0 = np.where(ok > 0, x, 0.0)
        s2 = walk_sum(ok * x0 * x0) if "std" in config.hop2_stats else None
        out.update(_signal_stats(2, signal, config.hop2_stats, walk_sum(ok), walk_sum(ok * x0), s2, None))
    return out


def _hop2_blocks(snapshot: GraphSnapshot, hop1: sp.csr_array, pos: np.ndarray,
                 t: np.ndarray) -> Iterator[tuple[int, int, sp.csr_array]]:
    """Two-step walk weights (row → linked account → its linked account), in row blocks small enough to
    hold in memory; the end account must exist at the row's time and the row's own account is excluded."""
    adjacency = snapshot.graph.adjacency
    degree = np.diff(adjacency.indptr).astype(np.float64)
    bound = _row_sums(_entry_rows(hop1), degree[hop1.indices], hop1.shape[0])
    start, n = 0, hop1.shape[0]
    while start < n:
        stop = start + max(1, int(np.searchsorted(np.cumsum(bound[start:]), _HOP2_ENTRY_BUDGET, side="right")))
        stop = min(stop, n)
        walks = sp.csr_array(hop1[start:stop] @ adjacency)
        own, t_block = pos[start:stop], t[start:stop]
        walks = _keep_entries(
            walks, _entry_rows(walks),
            lambda r, c, own=own, t_block=t_block: (c != own[r]) & _at_or_before(snapshot.created_at[c], t_block[r]),
        )
        yield start, stop, walks
        start = stop


class _ComponentClock:
    """Counts, per component, the members created at or before a time (NaN creation: always), for many
    (component, time) pairs at once, by binary search over (component, creation rank) keys."""

    def __init__(self, labels: np.ndarray, created_at: np.ndarray):
        finite = ~np.isnan(created_at)
        self.times = np.unique(created_at[finite])
        self.stride = len(self.times) + 1
        rank = np.zeros(len(labels), dtype=np.int64)
        rank[finite] = np.searchsorted(self.times, created_at[finite], side="left") + 1
        self.keys = np.sort(labels.astype(np.int64) * self.stride + rank)

    def count(self, component: np.ndarray, t: np.ndarray) -> np.ndarray:
        base = component.astype(np.int64) * self.stride
        upto = np.searchsorted(self.times, t, side="right")
        return (np.searchsorted(self.keys, base + upto, side="right")
                - np.searchsorted(self.keys, base, side="left")).astype(np.float64)


def _group_columns(snapshot: GraphSnapshot, hop1: sp.csr_array, pos: np.ndarray, t: np.ndarray,
                   own_created: np.ndarray) -> dict[str, np.ndarray]:
    """Group size and share of new accounts, counting members existing at each row's time. A row's group
    is its own component, or for an account new to the snapshot, the union of its neighbours' groups."""
    groups = snapshot.graph.groups
    n = len(pos)
    new_window = snapshot.config.new_account_days * SECONDS_PER_DAY
    # touched components as (row, component) pairs: own component plus the neighbours' ones
    rows_n = _entry_rows(hop1)
    pairs = pd.DataFrame({
        "row": np.concatenate([np.flatnonzero(pos >= 0), rows_n]),
        "component": np.concatenate([groups.labels[pos[pos >= 0]], groups.labels[hop1.indices]]),
    }).drop_duplicates()
    row, comp = pairs["row"].to_numpy(), pairs["component"].to_numpy()
    clock = snapshot.component_clock
    existing = clock.count(comp, t[row])
    older = clock.count(comp, t[row] - new_window)
    # the row's own account is a member of its own component: count it once, below, from its own record
    own = pos[row] >= 0
    own_node_created = snapshot.created_at[np.where(own, pos[row], 0)]
    existing -= own & _at_or_before(own_node_created, t[row])
    older -= own & _at_or_before(own_node_created, t[row] - new_window)
    others = _row_sums(row, existing, n)
    others_new = _row_sums(row, existing - older, n)
    self_new = ~np.isnan(own_created) & (own_created > t - new_window) & (own_created <= t)
    size = 1.0 + others
    return {"group_size": size, "group_new_account_share": (others_new + self_new) / size}


# ------------------------------------------------------------------------------------------------------
# Group cases
# ------------------------------------------------------------------------------------------------------


def group_cases(
    scored: pd.DataFrame,
    graph: LinkGraph | GraphSnapshot,
    id_field: str = "account_id",
    reasons_field: str | None = "reasons",
    top_reasons: int = 3,
) -> pd.DataFrame:
    """One case per group with at least two of the scored accounts (columns id, probability, exposure,
    optional reasons: a list of reason texts or of objects with `.feature`, `.text`, `.contribution`).

    Returns group_id, members (by probability, highest first), member_count, group_size (the whole group
    in the graph), expected_loss (sum of probability × exposure), max_probability and, when reasons are
    given, top_reasons: the reasons shared by most members (reason objects are pooled per feature by total
    contribution). Sorted by expected loss, highest first. A repeated account keeps its last row.
    """
    link_graph = graph.graph if isinstance(graph, GraphSnapshot) else graph
    groups = link_graph.groups
    frame = scored.drop_duplicates(id_field, keep="last").reset_index(drop=True)
    pos = link_graph.positions(frame[id_field].astype(str).to_numpy())
    frame = frame.loc[pos >= 0].assign(_component=groups.labels[pos[pos >= 0]])
    frame = frame.assign(_loss=frame["probability"].to_numpy(dtype=np.float64)
                         * frame["exposure"].to_numpy(dtype=np.float64))
    with_reasons = reasons_field is not None and reasons_field in frame.columns
    columns = ["group_id", "members", "member_count", "group_size", "expected_loss", "max_probability"]
    if with_reasons:
        columns.append("top_reasons")
    rows = []
    for key, members in frame.groupby("_component", sort=False):
        component = int(cast(int, key))
        if len(members) < 2:
            continue
        members = members.sort_values("probability", ascending=False, kind="stable")
        row: dict[str, Any] = {
            "group_id": groups.group_ids[component],
            "members": [str(m) for m in members[id_field]],
            "member_count": len(members),
            "group_size": int(groups.sizes[component]),
            "expected_loss": float(members["_loss"].sum()),
            "max_probability": float(members["probability"].max()),
        }
        if with_reasons and reasons_field is not None:
            row["top_reasons"] = _top_reasons(members[reasons_field].tolist(), top_reasons)
        rows.append(row)
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.DataFrame(rows, columns=columns).sort_values("expected_loss", ascending=False,
                                                           ignore_index=True)


def _top_reasons(per_member: list[Any], k: int) -> list[str]:
    members: dict[str, set[int]] = defaultdict(set)
    strength: dict[str, float] = defaultdict(float)
    text: dict[str, tuple[float, str]] = {}
    for m, reasons in enumerate(per_member):
        if reasons is None or (isinstance(reasons, float) and np.isnan(reasons)):
            continue
        for reason in [reasons] if isinstance(reasons, str) else list(reasons):
            if isinstance(reason, str):
                key, label, contribution = reason, reason, 0.0
            else:
                key, label = str(reason.feature), str(reason.text)
                contribution = float(getattr(reason, "contribution", 0.0))
            members[key].add(m)
            strength[key] += contribution
            # show the text of the member where this reason weighs most
            if key not in text or contribution > text[key][0]:
                text[key] = (contribution, label)
    order = sorted(members, key=lambda key: (-len(members[key]), -strength[key], key))
    return [text[key][1] for key in order[:k]]
