"""Entity types beyond the marketplace core (accounts, their identifiers, listings).

Every entity type of the registry (`triage.entities`) whose `EntitySpec.generator` names a module other than
the core's gets its records and hidden truth generated after the core tables, from its own random stream,
by that module's `generate_entity(config, rng, core) -> EntityTables`. `write_dataset` writes them to the
files the registry names; `read_dataset` reads them back. A new entity type's generator is one module.
"""

from __future__ import annotations

import importlib
import zlib
from typing import TYPE_CHECKING, Protocol

import numpy as np

from synthetic.dataset import EntityTables, MarketplaceData
from triage.entities import ENTITIES, EntitySpec

if TYPE_CHECKING:
    from synthetic.config import GeneratorConfig

CORE_GENERATORS = frozenset({"synthetic.accounts", "synthetic.listings"})
"""The modules `generate_marketplace` runs itself, in its fixed order (listings depend on accounts)."""


class EntityGenerator(Protocol):
    def __call__(self, config: GeneratorConfig, rng: np.random.Generator, core: MarketplaceData) -> EntityTables:
        ...


def extension_specs() -> list[EntitySpec]:
    return [spec for spec in ENTITIES if spec.generator is not None and spec.generator not in CORE_GENERATORS]


def _stream(seed: int, name: str) -> np.random.Generator:
    # a stream per entity type keyed by its name: adding one never changes another's draws (or the core's)
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def generate_extensions(config: GeneratorConfig, core: MarketplaceData) -> dict[str, EntityTables]:
    out: dict[str, EntityTables] = {}
    for spec in extension_specs():
        generate: EntityGenerator = importlib.import_module(str(spec.generator)).generate_entity
        out[spec.name] = generate(config, _stream(config.seed, spec.name), core)
    return out
