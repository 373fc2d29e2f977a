from contextlib import asynccontextmanager

import pytest

from services.intake.logic import resolve_kind, validate_item, validate_options
from services.intake.submission.item_json import MAX_ITEM_DEPTH
from shared.errors import InvalidItem, InvalidJob, UnknownKind
from shared.kinds import Kind


def _positive_int(item):
    if not isinstance(item, int) or isinstance(item, bool) or item <= 0:
        raise ValueError("expected a positive integer")
    return item


def _wrapped(item):
    return {"value": item}


def _strict_options(options):
    if set(options) - {"rounds"}:
        raise ValueError(f"unexpected keys {sorted(set(options) - {'rounds'})}")
    return {"rounds": 1, **options}


@asynccontextmanager
async def _never_started(settings):
    raise AssertionError("intake never starts a handler")
    yield


POSITIVE = Kind("test.positive", _positive_int, _never_started, _strict_options)
WRAPPED = Kind("test.wrapped", _wrapped, _never_started)
KINDS = {kind.name: kind for kind in (POSITIVE, WRAPPED)}


def test_a_known_kind_resolves_to_itself():
    assert resolve_kind(KINDS, "test.wrapped") is WRAPPED


def test_an_unknown_kind_is_refused_naming_it_and_every_known_kind():
    with pytest.raises(UnknownKind) as caught:
        resolve_kind(KINDS, "test.missing")
    assert caught.value.kind == "test.missing"
    assert caught.value.field == "kind"
    assert caught.value.status == 422
    assert "'test.missing'" in caught.value.reason
    assert "test.positive" in caught.value.reason and "test.wrapped" in caught.value.reason


def test_a_valid_item_comes_back_as_the_kind_normalised_it():
    assert validate_item(WRAPPED, 0, "x", max_item_bytes=1024) == {"value": "x"}


def test_an_item_the_kind_rejects_names_its_position_and_the_reason():
    with pytest.raises(InvalidItem) as caught:
        validate_item(POSITIVE, 7, -3, max_item_bytes=1024)
    assert caught.value.index == 7
    assert caught.value.field == "items[7]"
    assert caught.value.reason == "item 7: expected a positive integer"


def test_the_size_limit_applies_to_the_normalised_item():
    # '"abc"' is 5 bytes, but the normalised '{"value":"abc"}' is 15.
    assert validate_item(WRAPPED, 0, "abc", max_item_bytes=15) == {"value": "abc"}
    with pytest.raises(InvalidItem) as caught:
        validate_item(WRAPPED, 2, "abc", max_item_bytes=14)
    assert caught.value.field == "items[2]"
    assert "14-byte limit" in caught.value.reason


def test_options_the_kind_accepts_come_back_normalised():
    assert validate_options(POSITIVE, {}) == {"rounds": 1}
    assert validate_options(POSITIVE, {"rounds": 9}) == {"rounds": 9}


def test_options_the_kind_rejects_are_a_422_on_the_options_field():
    with pytest.raises(InvalidJob) as caught:
        validate_options(POSITIVE, {"depth": 2})
    assert caught.value.field == "options"
    assert caught.value.status == 422
    assert caught.value.reason == "options: unexpected keys ['depth']"


def test_a_kind_without_an_options_validator_takes_options_as_given():
    assert validate_options(WRAPPED, {"anything": [1, 2]}) == {"anything": [1, 2]}


def test_an_item_nested_deeper_than_the_contracts_carry_is_refused_naming_its_position():
    deepest = []
    for _ in range(MAX_ITEM_DEPTH - 2):  # MAX_ITEM_DEPTH - 1 levels
        deepest = [deepest]
    assert validate_item(WRAPPED, 0, deepest, max_item_bytes=4096) == {"value": deepest}  # wrapped: MAX_ITEM_DEPTH
    with pytest.raises(InvalidItem) as caught:
        validate_item(WRAPPED, 3, [deepest], max_item_bytes=4096)
    assert caught.value.field == "items[3]"
    assert caught.value.reason == f"item 3: nested deeper than {MAX_ITEM_DEPTH} levels"
