"""The one definition of every feature, used by training and serving alike.

Which feature set belongs to which entity type is the entity registry's business (`triage.entities`): look
one up with `feature_set_for(name)`.
"""

from features.encoder import FeatureEncoder
from features.inputs import columns_from_frame, columns_from_records
from features.schema import FeatureKind, FeatureSet, FeatureSpec, FieldKind, RawField
from triage.entities import ENTITIES


def feature_set_for(entity: str) -> FeatureSet:
    """The feature set of a scored entity type (ValueError naming the known ones otherwise)."""
    feature_set = ENTITIES.scored(str(entity)).feature_set()
    if not isinstance(feature_set, FeatureSet):
        raise TypeError(f"entity {entity!r} declares {type(feature_set).__name__} as its features, not a FeatureSet")
    return feature_set


__all__ = [
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
