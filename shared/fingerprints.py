"""What identifies an item across jobs (its key) and what identifies its meaningful output (its fingerprint).

A kind may define its own of either (``Kind.item_key``, ``Kind.fingerprint``); the defaults are generic.
"""

import hashlib
from collections.abc import Mapping

import orjson
from pydantic import JsonValue

from shared.kinds import Kind

MAX_PLAIN_KEY_CHARS = 512
"""A longer key is stored as its SHA-256, so keys stay indexable."""


def canonical_json(value: JsonValue) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def generic_item_key(item: JsonValue) -> str:
    """A string item is its own key; anything else is its canonical JSON."""
    return item if isinstance(item, str) else canonical_json(item).decode()


def generic_fingerprint(output: JsonValue) -> str:
    """SHA-256 of the output as canonical JSON (key order does not matter)."""
    return hashlib.sha256(canonical_json(output)).hexdigest()


def bounded(key: str) -> str:
    if len(key) <= MAX_PLAIN_KEY_CHARS:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def item_key(kinds: Mapping[str, Kind], kind: str, item: JsonValue) -> str:
    """The key under which an item's results are compared and watched (tenant and kind scope it)."""
    known = kinds.get(kind)
    own = known.item_key if known is not None else None
    return bounded(own(item) if own is not None else generic_item_key(item))


def output_fingerprint(kind: Kind | None, output: JsonValue) -> str:
    """The fingerprint of a succeeded item's output."""
    own = kind.fingerprint if kind is not None else None
    return own(output) if own is not None else generic_fingerprint(output)
