"""Items as JSON bytes: as sent on (key order kept) and canonical (sorted keys, for the request fingerprint). Pure.

msgspec encodes a small item for a fraction of what ``orjson.dumps`` costs per call when its results are kept
(each one touches fresh memory), and an upload encodes every item (figures: docs/performance.md).
"""

from collections.abc import Sequence

import msgspec
import orjson
from pydantic import JsonValue

MAX_ITEM_DEPTH = 198
"""Deepest nesting of an item that the contracts' parser (pydantic's, 200 levels at most) reads back inside a
TaskBatch or BatchProcessed, where an item sits three levels down. Deeper items are refused at intake."""

_encode = msgspec.json.Encoder().encode
_encode_sorted = msgspec.json.Encoder(order="sorted").encode


def encode_item(value: JsonValue) -> bytes:
    """Compact JSON of an item, keys in their own order: what the handler will be sent."""
    return _encode(value)


def encode_sorted(value: JsonValue) -> bytes:
    """Compact JSON with sorted keys as msgspec writes it: ``canonical_item`` except for floats with a positive
    exponent (msgspec ``1e16``, orjson ``1e+16``)."""
    return _encode_sorted(value)


def canonical_item(value: JsonValue) -> bytes:
    """Compact JSON with sorted keys: ``orjson.dumps(value, option=OPT_SORT_KEYS)``, the fingerprint's definition.
    Raises TypeError for what orjson cannot encode (integers beyond 64 bits), which the rest of the pipeline (the
    results' jsonb) cannot store either."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def canonical_lines(values: Sequence[JsonValue], sorted_encodings: list[bytes]) -> bytes:
    """``canonical_item`` of each value, each followed by a newline, concatenated; ``sorted_encodings`` holds each
    value's ``encode_sorted``. One encoding of the whole list by both libraries tells whether they agree on every
    value (they differ only by orjson's extra ``+`` signs), so values are encoded again only when they do not.
    Raises TypeError as ``canonical_item`` does."""
    if orjson.dumps(values, option=orjson.OPT_SORT_KEYS) == _encode_sorted(values):
        return b"\n".join(sorted_encodings) + b"\n"
    return b"\n".join(map(canonical_item, values)) + b"\n"


def nesting_depth(value: JsonValue) -> int:
    """Levels of arrays and objects: 0 for a scalar, 1 for ``[]`` or ``{"a": 1}``."""
    deepest, level = 0, [(value, 1)]
    while level:
        node, depth = level.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list | tuple) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        level.extend((child, depth + 1) for child in children)
    return deepest


def may_be_too_deep(sorted_encoding: bytes) -> bool:
    """False when the encoding cannot hold more than MAX_ITEM_DEPTH levels (each level opens a bracket)."""
    return sorted_encoding.count(b"[") + sorted_encoding.count(b"{") > MAX_ITEM_DEPTH
