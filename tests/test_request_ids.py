"""Entity ids in requests: what the schema refuses, checked on the generated request models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from features.listing import LISTING_FEATURE_SET
from serving.schemas import RECORD_MODELS


def listing(listing_id: str) -> dict[str, object]:
    """The documented example listing (every field's OpenAPI example) with the id under test."""
    example = {f.name: f.example for f in LISTING_FEATURE_SET.inputs if f.example is not None}
    return example | {"listing_id": listing_id}


@pytest.mark.parametrize(("value", "message"), [
    ("L\x00001", "must not contain NUL characters"),
    ("L\x01", "must not contain control characters"),
    ("L\x1f1", "must not contain control characters"),
    ("L\t1", "must not contain control characters"),
    (" \t\n", "must contain visible characters"),
])
def test_ids_with_nothing_visible_or_control_characters_are_refused(value: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        RECORD_MODELS["listing"].model_validate(listing(value))
    errors = [e for e in raised.value.errors() if e["loc"] == ("listing_id",)]
    assert errors and message in errors[0]["msg"]


@pytest.mark.parametrize("value", ["L00000042", "L-é-日本", "L\x7f", "L 42"])
def test_ordinary_ids_pass(value: str) -> None:
    assert RECORD_MODELS["listing"].model_validate(listing(value)).listing_id == value  # type: ignore[attr-defined]
