"""Reads an NDJSON upload into a spool: validated, counted and fingerprinted, in bounded memory.

Nothing is published until the whole upload has been read, so a bad line rejects the job whole
(nothing half-submitted) and the total is known before the first batch leaves.
"""

from collections.abc import AsyncIterator, Callable, Iterator
from tempfile import SpooledTemporaryFile

import orjson
from pydantic import JsonValue

from services.intake.logic import Fingerprint
from shared.errors import InvalidItem, InvalidJob, LimitExceeded


class Spool:
    """Normalised items, one JSON document per line, in memory up to a size and on disk beyond it."""

    def __init__(self, memory_bytes: int) -> None:
        self._file = SpooledTemporaryFile(max_size=memory_bytes, mode="w+b")
        self.count = 0

    def append(self, item: JsonValue) -> None:
        self._file.write(orjson.dumps(item) + b"\n")
        self.count += 1

    def items(self) -> Iterator[JsonValue]:
        self._file.seek(0)
        for line in self._file:
            yield orjson.loads(line)

    def close(self) -> None:
        self._file.close()


async def spool_ndjson(
    chunks: AsyncIterator[bytes],
    *,
    validate: Callable[[int, JsonValue], JsonValue],
    fingerprint: Fingerprint,
    max_items: int,
    max_line_bytes: int,
    memory_bytes: int,
) -> Spool:
    """Read every line; raises InvalidJob naming the line for the first malformed one."""
    spool = Spool(memory_bytes)
    pending = bytearray()
    line_number = 0

    def too_long(number: int) -> InvalidJob:
        return InvalidJob(f"line {number}: longer than {max_line_bytes} bytes", field=f"line {number}")

    def take(line: bytes) -> None:
        nonlocal line_number
        line_number += 1
        if len(line) > max_line_bytes:
            raise too_long(line_number)
        if not line.strip():
            return
        if spool.count >= max_items:
            raise LimitExceeded("items", spool.count + 1, max_items)
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidJob(f"line {line_number}: not valid JSON ({exc})", field=f"line {line_number}") from exc
        try:
            normalized = validate(spool.count, item)
        except InvalidItem as exc:
            raise InvalidJob(f"line {line_number}: {exc.reason}", field=f"line {line_number}") from exc
        fingerprint.add_item(normalized)
        spool.append(normalized)

    try:
        async for chunk in chunks:
            pending += chunk
            start = 0
            while (end := pending.find(b"\n", start)) != -1:
                take(bytes(pending[start:end]))
                start = end + 1
            del pending[:start]
            if len(pending) > max_line_bytes:
                raise too_long(line_number + 1)
        if pending:
            take(bytes(pending))
        if spool.count == 0:
            raise InvalidJob("the upload holds no items", field="items")
    except BaseException:
        spool.close()
        raise
    return spool
