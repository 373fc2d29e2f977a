"""Reading a job's items from a file or stdin: CSV (one object per row), JSONL, or plain lines."""

import csv
import json
from collections.abc import Iterator
from typing import TextIO

from pydantic import JsonValue

from sluice.client.errors import ClientError

FORMATS = ("csv", "jsonl", "lines")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


class ItemsUnreadable(ClientError):
    """A line of the input is not what its format says (the line number is named)."""


def detect_format(name_or_format: str) -> str:
    """``csv``, ``jsonl`` or ``lines``: given outright, or from a file name's suffix (anything else is lines)."""
    if name_or_format in FORMATS:
        return name_or_format
    if name_or_format == "ndjson":
        return "jsonl"
    lowered = name_or_format.lower()
    return next((fmt for suffix, fmt in _SUFFIXES.items() if lowered.endswith(suffix)), "lines")


def read_items(stream: TextIO, name_or_format: str) -> Iterator[JsonValue]:
    """Items one at a time (the input is never read whole); blank lines are skipped."""
    fmt = detect_format(name_or_format)
    if fmt == "csv":
        yield from csv.DictReader(stream)
        return
    for number, line in enumerate(stream, start=1):
        text = line.strip()
        if not text:
            continue
        if fmt == "lines":
            yield text
            continue
        try:
            yield json.loads(text)
        except json.JSONDecodeError as exc:
            raise ItemsUnreadable(f"line {number} is not JSON: {exc.msg}") from exc
