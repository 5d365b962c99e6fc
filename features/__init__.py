"""The one definition of every feature, used by training and serving alike."""

from collections.abc import Mapping
from types import MappingProxyType

from features.account import ACCOUNT_FEATURE_SET
from features.encoder import FeatureEncoder
from features.inputs import columns_from_frame, columns_from_records
from features.listing import LISTING_FEATURE_SET
from features.schema import Entity, FeatureKind, FeatureSet, FeatureSpec, FieldKind, RawField

FEATURE_SETS: Mapping[Entity, FeatureSet] = MappingProxyType(
    {Entity.LISTING: LISTING_FEATURE_SET, Entity.ACCOUNT: ACCOUNT_FEATURE_SET}
)


def feature_set_for(entity: str | Entity) -> FeatureSet:
    try:
        return FEATURE_SETS[Entity(entity)]
    except ValueError:
        raise ValueError(f"unknown entity {entity!r}: expected one of {[e.value for e in Entity]}") from None


__all__ = [
    "ACCOUNT_FEATURE_SET",
    "FEATURE_SETS",
    "LISTING_FEATURE_SET",
    "Entity",
    "FeatureEncoder",
    "FeatureKind",
    "FeatureSet",
    "FeatureSpec",
    "FieldKind",
    "RawField",
    "columns_from_frame",
    "columns_from_records",
    "feature_set_for",
]
