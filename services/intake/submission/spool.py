"""Reads an NDJSON upload into a spool: validated, counted and fingerprinted, in bounded memory.

Nothing is published until the whole upload has been read, so a bad line rejects the job whole
(nothing half-submitted) and the total is known before the first batch leaves.
"""

from collections.abc import AsyncIterator, Callable, Iterator
from tempfile import SpooledTemporaryFile

import orjson
from pydantic import JsonValue

from services.intake.logic import Fingerprint, check_item_limits, within_item_limits
from services.intake.submission.item_json import canonical_lines, encode_item, encode_sorted
from shared.errors import InvalidItem, InvalidJob, LimitExceeded

READ_BLOCK_BYTES = 1 << 20


class Spool:
    """Normalised items as JSON, one per line, in memory up to a size and on disk beyond it."""

    def __init__(self, memory_bytes: int) -> None:
        self._file = SpooledTemporaryFile(max_size=memory_bytes, mode="w+b")
        self.count = 0

    def write(self, encoded: list[bytes]) -> None:
        """Append items given as their JSON (one value each, no newline inside)."""
        if encoded:
            self._file.write(b"\n".join(encoded))
            self._file.write(b"\n")
            self.count += len(encoded)

    def encoded(self) -> Iterator[bytes]:
        """Every item's JSON, in order."""
        self._file.seek(0)
        rest = b""
        while block := self._file.read(READ_BLOCK_BYTES):
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            yield from lines

    def items(self) -> Iterator[JsonValue]:
        return map(orjson.loads, self.encoded())

    def close(self) -> None:
        self._file.close()


class _Lines:
    """The per-line rules of an upload, applied a chunk's worth of lines at a time."""

    def __init__(
        self, spool: Spool, validate: Callable[[int, JsonValue], JsonValue], fingerprint: Fingerprint,
        max_items: int, max_line_bytes: int, max_item_bytes: int,
    ) -> None:  # fmt: skip
        self.spool, self.validate, self.fingerprint = spool, validate, fingerprint
        self.max_items, self.max_line_bytes, self.max_item_bytes = max_items, max_line_bytes, max_item_bytes
        self.number = 0
        """Lines read so far, blank ones included."""

    def too_long(self, number: int) -> InvalidJob:
        return InvalidJob(f"line {number}: longer than {self.max_line_bytes} bytes", field=f"line {number}")

    def take(self, lines: list[bytes]) -> None:
        """Validate the lines, then spool and fingerprint their items; raises InvalidJob (or LimitExceeded) for
        the first bad line, checked in line order: too long, blank (skipped), one item too many, JSON, kind."""
        values: list[JsonValue] = []
        sorted_encodings: list[bytes] = []
        encoded: list[bytes] = []
        validate, max_line_bytes, max_items = self.validate, self.max_line_bytes, self.max_items
        count = self.spool.count
        quick_limit = within_item_limits(self.max_item_bytes)
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        number = self.number
        for line in lines:
            number += 1
            if len(line) > max_line_bytes:
                raise self.too_long(number)
            try:
                item = loads(line)
            except decode_error as exc:
                if not line.strip():
                    continue
                if count >= max_items:
                    raise LimitExceeded("items", count + 1, max_items) from None
                raise InvalidJob(f"line {number}: not valid JSON ({exc})", field=f"line {number}") from exc
            if count >= max_items:
                raise LimitExceeded("items", count + 1, max_items)
            try:
                normalized = validate(count, item)
                sorted_encoding = encode_sorted(normalized)
                if len(sorted_encoding) > quick_limit:
                    check_item_limits(count, normalized, sorted_encoding, self.max_item_bytes)
            except InvalidItem as exc:
                raise InvalidJob(f"line {number}: {exc.reason}", field=f"line {number}") from exc
            values.append(normalized)
            sorted_encodings.append(sorted_encoding)
            # A line that already is the item's canonical JSON is spooled as it came; others are written anew.
            encoded.append(line if line == sorted_encoding else encode_item(normalized))
            count += 1
        self.number = number
        if encoded:
            self.fingerprint.add_lines(canonical_lines(values, sorted_encodings))
            self.spool.write(encoded)


async def spool_ndjson(
    chunks: AsyncIterator[bytes],
    *,
    validate: Callable[[int, JsonValue], JsonValue],
    fingerprint: Fingerprint,
    max_items: int,
    max_line_bytes: int,
    max_item_bytes: int,
    memory_bytes: int,
) -> Spool:
    """Read every line; raises InvalidJob naming the line for the first malformed one. ``validate(index, item)``
    is the kind's rule (raising InvalidItem); an item's canonical JSON may be at most ``max_item_bytes``."""
    spool = Spool(memory_bytes)
    lines = _Lines(spool, validate, fingerprint, max_items, max_line_bytes, max_item_bytes)
    pending = bytearray()
    try:
        async for chunk in chunks:
            if b"\n" in chunk:
                complete = (bytes(pending) + chunk if pending else chunk).split(b"\n")
                pending = bytearray(complete.pop())
                lines.take(complete)
            else:
                pending += chunk
            if len(pending) > max_line_bytes:
                raise lines.too_long(lines.number + 1)
        if pending:
            lines.take([bytes(pending)])
        if spool.count == 0:
            raise InvalidJob("the upload holds no items", field="items")
    except BaseException:
        spool.close()
        raise
    return spool
