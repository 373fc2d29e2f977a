import pytest

from services.intake.logic import Fingerprint
from sluice.contracts.events import Priority

BASE = dict(
    kind="bench.cpu",
    options={"rounds": 5, "mode": "fast"},
    priority=Priority.NORMAL,
    callback_url="https://hooks.example.com/done",
    items=[{"url": "https://a.example"}, "b", 3],
)


def _digest(kind, options, priority, callback_url, items) -> str:
    fingerprint = Fingerprint(kind, options, priority, callback_url)
    for item in items:
        fingerprint.add_item(item)
    return fingerprint.hexdigest()


def test_equal_requests_have_equal_fingerprints():
    assert _digest(**BASE) == _digest(**{**BASE, "options": dict(BASE["options"]), "items": list(BASE["items"])})


def test_option_key_order_does_not_change_the_fingerprint():
    assert _digest(**BASE) == _digest(**{**BASE, "options": {"mode": "fast", "rounds": 5}})


def test_key_order_inside_an_item_does_not_change_the_fingerprint():
    a = _digest(**{**BASE, "items": [{"x": 1, "y": 2}]})
    b = _digest(**{**BASE, "items": [{"y": 2, "x": 1}]})
    assert a == b


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "bench.noop"},
        {"options": {"rounds": 6, "mode": "fast"}},
        {"options": {"rounds": 5}},
        {"options": {}},
        {"priority": Priority.HIGH},
        {"callback_url": None},
        {"callback_url": "https://hooks.example.com/other"},
        {"items": [{"url": "https://a.example"}, "b", 4]},
        {"items": [{"url": "https://a.example"}, "b"]},
        {"items": [{"url": "https://a.example"}, "b", 3, 3]},
        {"items": ["b", {"url": "https://a.example"}, 3]},
        {"items": [{"url": "https://a.example"}, "b", "3"]},
    ],
    ids=lambda change: repr(change),
)
def test_changing_any_part_of_the_request_changes_the_fingerprint(change):
    assert _digest(**{**BASE, **change}) != _digest(**BASE)


def test_items_cannot_be_regrouped_to_collide():
    assert _digest(**{**BASE, "items": ["ab", "c"]}) != _digest(**{**BASE, "items": ["a", "bc"]})
    assert _digest(**{**BASE, "items": [[1, 2]]}) != _digest(**{**BASE, "items": [1, 2]})


def test_the_fingerprint_is_a_sha256_hex_digest():
    digest = _digest(**BASE)
    assert len(digest) == 64
    int(digest, 16)
