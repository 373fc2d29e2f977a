"""A job's TaskBatch messages as JSON bytes, written without a model per item. Pure.

The envelope is validated once per job (as a TaskBatch with a stand-in item); each item is written around its
already validated JSON, so a batch of 1,000 items costs one pass over bytes instead of 1,000 TaskItem validations
and a re-serialisation. TaskItem's defaults (attempt 1, generation 0, no first_failed_at) are left out.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from uuid import UUID, uuid4

import msgspec
from pydantic import JsonValue

from sluice.contracts.events import MAX_BATCH_SIZE, Priority, TaskBatch, TaskItem, utc_now

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class EncodedBatch:
    batch_index: int
    items: int
    payload: bytes
    """A TaskBatch JSON document, published verbatim."""


def encode_batches(
    *,
    job_id: UUID,
    tenant: str,
    kind: str,
    options: dict[str, JsonValue],
    priority: Priority,
    items: Iterable[bytes],
    batch_size: int,
) -> Iterator[EncodedBatch]:
    """Consecutive batches of at most ``batch_size`` items, each item given as its JSON (valid, one value);
    item indexes run from 0 across the job, and every batch has its own event id and time."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be from 1 to {MAX_BATCH_SIZE}, not {batch_size}")
    envelope = TaskBatch(
        tenant=tenant, job_id=job_id, kind=kind, batch_index=0, options=options, priority=priority,
        items=[TaskItem(index=0, input=None)],
    )  # fmt: skip
    head = {"schema_version": envelope.schema_version, "tenant": envelope.tenant, "job_id": envelope.job_id}
    tail = {"type": envelope.type, "kind": envelope.kind, "options": envelope.options}
    pending = iter(items)
    first_index = batch_index = 0
    while chunk := list(islice(pending, batch_size)):
        written = b",".join([b'{"index":%d,"input":%b}' % pair for pair in enumerate(chunk, first_index)])
        document = {
            "event_id": uuid4(), **head, "occurred_at": utc_now(), **tail, "batch_index": batch_index,
            "priority": envelope.priority.value, "items": msgspec.Raw(b"[%b]" % written),
        }  # fmt: skip
        yield EncodedBatch(batch_index, len(chunk), _encode(document))
        first_index += len(chunk)
        batch_index += 1
