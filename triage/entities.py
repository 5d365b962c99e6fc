"""The entity registry: every entity type the risk team reviews, declared once.

An entity type is something that can become a case: a listing, an account, a group of linked accounts, or
an entity a user brings through an adapter (docs/adapters.md). Everything that varies by entity type reads
it from here: the feature set (by import path, so this bottom layer imports nothing above it), the data
set files, the registered model name, review capacity and handle time, the report segments, the links to
other entities (the seller context of a listing), the store's CHECK lists, the CLI's choices and the
API's routes and request models.

Adding an entity type: declare an `EntitySpec` in `BUILT_IN` (or `register()` one at run time, as an adapter
does), write its feature module and its generator module. Nothing else names entity types.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import AfterValidator, Field


@dataclass(frozen=True)
class Link:
    """A reference from one entity's records to another entity: the records' field `by` holds the other
    entity's id, and `columns` maps the other entity's columns to the names they take when joined in (the
    context a caller sends along, e.g. the seller's verification on a listing)."""

    by: str
    entity: str
    columns: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", MappingProxyType(dict(self.columns)))


@dataclass(frozen=True)
class AgeRule:
    """How old the account behind a record was when the record was scored: `at` minus `born`, in days, held
    by the model feature `feature`."""

    born: str
    at: str
    feature: str


@dataclass(frozen=True)
class EntitySpec:
    """One entity type.

    `features` is the import path of its `FeatureSet` (`"package.module:NAME"`), or the `FeatureSet` itself
    (an adapter's, built from its declaration); entity types without one (a group of accounts) are cases
    but are never scored themselves: their `members` are.
    """

    name: str
    plural: str
    description: str
    features: object = None
    data_file: str | None = None
    truth_file: str | None = None
    identifiers_file: str | None = None
    """Shared identifiers (devices, payments, addresses, IP ranges) that link entities of this type."""
    model_name: str | None = None
    """Default registered model name (settings may override it per entity)."""
    review_capacity_per_day: int = 100
    """k: cases of this type investigators review per day (capacity metrics, default training config)."""
    handle_minutes: float = 10.0
    """Average investigator minutes to review one case of this type (default queue policy)."""
    segments: tuple[str, ...] = ()
    """Raw columns the root-cause report segments cases by."""
    age: AgeRule | None = None
    links: tuple[Link, ...] = ()
    members: str | None = None
    """For a group entity type: the entity type of its members."""
    generator: str | None = None
    """The module of the synthetic generator that produces this type's records (documentation)."""

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or not self.name.islower():
            raise ValueError(f"entity name must be a lower-case identifier, got {self.name!r}")
        if (self.features is None) == (self.members is None):
            raise ValueError(f"entity {self.name!r}: give either `features` (scored) or `members` (a group)")
        if isinstance(self.features, str) and ":" not in self.features:
            raise ValueError(f"entity {self.name!r}: `features` must be 'module:ATTRIBUTE', got {self.features!r}")

    @property
    def scored(self) -> bool:
        """Whether records of this type are scored by a model of their own."""
        return self.features is not None

    def feature_set(self) -> Any:
        """The entity's `features.schema.FeatureSet`, imported on first use (the registry sits below the
        features layer and names it only by path)."""
        if self.features is None:
            raise LookupError(f"entity {self.name!r} is a group of {self.members} and has no feature set")
        if not isinstance(self.features, str):
            return self.features
        module, _, attribute = self.features.partition(":")
        return getattr(importlib.import_module(module), attribute)


def _built_in() -> tuple[EntitySpec, ...]:
    return (
        EntitySpec(
            name="listing", plural="listings", description="A product listing",
            features="features.listing:LISTING_FEATURE_SET", generator="synthetic.listings",
            data_file="listings.parquet", truth_file="listing_truth.parquet",
            model_name="triage-listing-scorer", review_capacity_per_day=200, handle_minutes=6.0,
            segments=("category", "shipping_origin", "seller_country", "seller_verification", "brand"),
            age=AgeRule(born="seller_created_at", at="created_at", feature="seller_age_days"),
            links=(Link("seller_id", "account", {"created_at": "seller_created_at", "country": "seller_country",
                                                 "verification": "seller_verification"}),),
        ),
        EntitySpec(
            name="account", plural="accounts", description="A seller or creator account",
            features="features.account:ACCOUNT_FEATURE_SET", generator="synthetic.accounts",
            data_file="accounts.parquet", truth_file="account_truth.parquet",
            identifiers_file="account_identifiers.parquet",
            model_name="triage-account-scorer", review_capacity_per_day=40, handle_minutes=20.0,
            segments=("category_focus", "country", "verification", "account_type"),
            age=AgeRule(born="created_at", at="observed_at", feature="account_age_days"),
        ),
        EntitySpec(
            name="group", plural="groups", description="Accounts linked by shared identifiers, reviewed as one case",
            members="account", handle_minutes=60.0,
        ),
    )


class EntityRegistry:
    """The entity types known to this process: the built-in ones plus any registered at run time."""

    def __init__(self, specs: tuple[EntitySpec, ...]) -> None:
        self._lock = threading.Lock()
        self._specs: dict[str, EntitySpec] = {spec.name: spec for spec in specs}
        for spec in specs:
            self._check_references(spec)

    def register(self, spec: EntitySpec) -> EntitySpec:
        """Add an entity type; registering the same declaration again is a no-op, a different one under a
        known name is refused."""
        with self._lock:
            known = self._specs.get(spec.name)
            if known is not None and not _same_declaration(known, spec):
                raise ValueError(f"entity {spec.name!r} is already registered with another declaration")
            self._check_references(spec)
            self._specs[spec.name] = spec
        return spec

    @contextlib.contextmanager
    def temporarily(self, spec: EntitySpec) -> Iterator[EntitySpec]:
        """Register `spec` for the duration of a `with` block (tests, one-off scripts); a spec that was
        already registered stays registered afterwards."""
        known = spec.name in self._specs
        self.register(spec)
        try:
            yield spec
        finally:
            if not known:
                with self._lock:
                    self._specs.pop(spec.name, None)

    def _check_references(self, spec: EntitySpec) -> None:
        for link in spec.links:
            if link.entity not in self._specs and link.entity != spec.name:
                raise ValueError(f"entity {spec.name!r} links to unknown entity {link.entity!r}")
        if spec.members is not None and spec.members not in self._specs:
            raise ValueError(f"group entity {spec.name!r} has unknown members {spec.members!r}")

    def get(self, name: str) -> EntitySpec:
        try:
            return self._specs[name]
        except KeyError:
            raise ValueError(f"unknown entity {name!r}: expected one of {self.names()}") from None

    def scored(self, name: str) -> EntitySpec:
        """The spec of an entity type that has its own scorer (not a group)."""
        spec = self.get(name)
        if not spec.scored:
            raise ValueError(f"entity {name!r} is not scored by a model of its own: expected one of "
                             f"{self.scored_names()}")
        return spec

    def names(self) -> tuple[str, ...]:
        """Every entity type a case can have (stores' CHECK lists)."""
        return tuple(self._specs)

    def scored_names(self) -> tuple[str, ...]:
        """The entity types with their own scorer (API routes, CLI `--entity`, training)."""
        return tuple(name for name, spec in self._specs.items() if spec.scored)

    def plural_to_name(self, plural: str) -> str:
        """The entity type whose plural (an API field or route) is `plural`."""
        for spec in self._specs.values():
            if spec.plural == plural:
                return spec.name
        raise ValueError(f"no entity type has the plural {plural!r}")

    def group_of(self, member: str) -> EntitySpec | None:
        """The group entity type whose members are `member`, if any."""
        return next((s for s in self._specs.values() if s.members == member), None)

    def __iter__(self) -> Iterator[EntitySpec]:
        return iter(tuple(self._specs.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._specs


def _features_identity(features: object) -> object:
    # a feature set given as an object (an adapter's) is rebuilt from its declaration on every load, with new
    # closures: two are the same declaration when they read and compute the same names
    if features is None or isinstance(features, str):
        return features
    return (getattr(features, "id_field", None), tuple(getattr(features, "feature_names", ())),
            tuple(raw.name for raw in getattr(features, "inputs", ())))


def _same_declaration(a: EntitySpec, b: EntitySpec) -> bool:
    def identity(spec: EntitySpec) -> tuple[object, ...]:
        return tuple(_features_identity(spec.features) if f.name == "features" else getattr(spec, f.name)
                     for f in dataclasses.fields(spec))

    return identity(a) == identity(b)


ENTITIES = EntityRegistry(_built_in())
"""The process-wide registry. Read it; `register()` adapters' entity types at start-up."""


def register(spec: EntitySpec) -> EntitySpec:
    return ENTITIES.register(spec)


def entity(name: str) -> EntitySpec:
    return ENTITIES.get(name)


def group_types() -> tuple[str, ...]:
    """The entity types that are groups of other entities' cases (e.g. linked accounts)."""
    return tuple(spec.name for spec in ENTITIES if spec.members is not None)


def check_entity_type(name: str) -> str:
    """`name` if it is a known entity type (a pydantic validator and a guard for stores and CLI)."""
    ENTITIES.get(name)
    return name


def check_scored_entity(name: str) -> str:
    ENTITIES.scored(name)
    return name


def _entity_names_schema(schema: dict[str, Any]) -> None:
    # the published contract names the entity types (as of start-up); the validator reads the live registry
    schema["enum"] = list(ENTITIES.names())


EntityName = Annotated[str, AfterValidator(check_entity_type), Field(json_schema_extra=_entity_names_schema)]
"""A pydantic field holding a known entity type's name (validated against the registry when parsed)."""
