"""Pure rules of intake: validating a job, splitting it into batches, and the status a caller sees."""

import base64
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from uuid import UUID

import orjson
from pydantic import JsonValue

from services.intake.submission.batches import encode_batches
from services.intake.submission.item_json import (
    MAX_ITEM_DEPTH,
    canonical_item,
    encode_item,
    encode_sorted,
    may_be_too_deep,
    nesting_depth,
)
from shared.errors import InvalidItem, InvalidJob, UnknownKind
from shared.failures import validate_failure_options
from shared.kinds import Kind
from shared.records import JobRecord, job_timeout_option
from sluice.contracts.events import JobStatus, Priority, TaskBatch, task_batch


def resolve_kind(kinds: Mapping[str, Kind], name: str) -> Kind:
    kind = kinds.get(name)
    if kind is None:
        raise UnknownKind(name, list(kinds))
    return kind


def validate_options(kind: Kind, options: dict[str, JsonValue]) -> dict[str, JsonValue]:
    try:
        validated = kind.validate_options(validate_failure_options(options))
    except ValueError as exc:
        raise InvalidJob(f"options: {exc}", field="options") from exc
    try:
        job_timeout_option(validated)
    except ValueError as exc:
        raise InvalidJob(f"options: {exc}", field="options.job_timeout_s") from exc
    return validated


def item_rule(kind: Kind) -> Callable[[int, JsonValue], JsonValue]:
    """The kind's own check of one item (its ValueError raised as InvalidItem naming the item's index)."""
    check = kind.validate_item

    def validate(index: int, item: JsonValue) -> JsonValue:
        try:
            return check(item)
        except ValueError as exc:
            raise InvalidItem(index, str(exc)) from exc

    return validate


def within_item_limits(max_item_bytes: int) -> int:
    """Sorted encodings up to this many bytes are within both item limits, so need no closer look."""
    return min(max_item_bytes * 4 // 5, 2 * MAX_ITEM_DEPTH)  # orjson's canonical form is at most 5/4 as long


def check_item_limits(index: int, item: JsonValue, sorted_encoding: bytes, max_item_bytes: int) -> None:
    """Raises InvalidItem when the item's canonical JSON is over ``max_item_bytes`` or it is nested deeper
    than the contracts can carry (MAX_ITEM_DEPTH)."""
    if len(sorted_encoding) > max_item_bytes * 4 // 5 and len(canonical_item(item)) > max_item_bytes:
        raise InvalidItem(index, f"larger than the {max_item_bytes}-byte limit per item")
    if may_be_too_deep(sorted_encoding) and nesting_depth(item) > MAX_ITEM_DEPTH:
        raise InvalidItem(index, f"nested deeper than {MAX_ITEM_DEPTH} levels")


def validate_item(kind: Kind, index: int, item: JsonValue, max_item_bytes: int) -> JsonValue:
    """The item as the handler will get it; raises InvalidItem naming its position."""
    normalized = item_rule(kind)(index, item)
    check_item_limits(index, normalized, encode_sorted(normalized), max_item_bytes)
    return normalized


def count_batches(total_items: int, batch_size: int) -> int:
    return -(-total_items // batch_size)


def split_into_batches(
    *,
    job_id: UUID,
    tenant: str,
    kind: str,
    options: dict[str, JsonValue],
    priority: Priority,
    items: Iterable[JsonValue],
    batch_size: int,
) -> Iterator[TaskBatch]:
    """Consecutive TaskBatches of at most ``batch_size`` items; item indexes run from 0 across the job. The
    models of what intake stores and publishes (``encode_batches``, which takes the items' JSON)."""
    for batch in encode_batches(
        job_id=job_id, tenant=tenant, kind=kind, options=options, priority=priority,
        items=map(encode_item, items), batch_size=batch_size,
    ):  # fmt: skip
        yield task_batch.validate_json(batch.payload)


class Fingerprint:
    """A digest of a job request, so a reused Idempotency-Key with a different request is caught."""

    def __init__(self, kind: str, options: dict[str, JsonValue], priority: Priority, callback_url: str | None) -> None:
        self._digest = hashlib.sha256(
            orjson.dumps([kind, options, priority.value, callback_url], option=orjson.OPT_SORT_KEYS)
        )

    def add_item(self, item: JsonValue) -> None:
        self._digest.update(canonical_item(item) + b"\n")

    def add_lines(self, lines: bytes) -> None:
        """Several items at once, as ``canonical_lines`` gives them (the same digest as one ``add_item`` each)."""
        self._digest.update(lines)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


MAX_ITEM_INDEX = 2**31 - 1
"""Item indexes are stored as PostgreSQL integers."""


def encode_cursor(item_index: int) -> str:
    return base64.urlsafe_b64encode(f"i:{item_index}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The item index a page starts after; -1 for the first page."""
    if not cursor:
        return -1
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, value = text.split(":", 1)
        index = int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJob("cursor is not one this API returned", field="cursor", status=400) from exc
    if prefix != "i" or not -1 <= index <= MAX_ITEM_INDEX:
        raise InvalidJob("cursor is not one this API returned", field="cursor", status=400)
    return index


def status_view(job: JobRecord, now: datetime) -> dict[str, JsonValue]:
    """What GET /v1/jobs/{id} answers: status, counts, percent, times and an ETA from the rate so far."""
    counts = job.counts
    percent = 100.0 if counts.total == 0 else round(100.0 * counts.done / counts.total, 2)
    eta_seconds: float | None = None
    if job.status is JobStatus.RUNNING and job.started_at and counts.done:
        elapsed = max((now - job.started_at).total_seconds(), 1e-3)
        eta_seconds = round(counts.pending / (counts.done / elapsed), 1)
    elif job.status.is_terminal:
        eta_seconds = 0.0
    return {
        "job_id": str(job.job_id),
        "tenant": job.tenant,
        "kind": job.kind,
        "priority": job.priority.value,
        "status": job.status.value,
        "counts": {
            "total": counts.total,
            "succeeded": counts.succeeded,
            "failed": counts.failed,
            "cancelled": counts.cancelled,
            "timed_out": counts.timed_out,
            "pending": counts.pending,
        },
        "percent": min(percent, 100.0),
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "cancel_requested_at": job.cancel_requested_at.isoformat() if job.cancel_requested_at else None,
        "eta_seconds": eta_seconds,
        "error": job.error,
        "deadline_at": job.deadline_at.isoformat() if job.deadline_at else None,
        "stalled": job.status is JobStatus.RUNNING and job.stalled_since is not None,
        "stalled_since": job.stalled_since.isoformat() if job.stalled_since else None,
        "options": job.options,
    }
