"""Fast codecs for the two messages every item crosses: TaskBatch (tasks topics) and BatchProcessed (results).

The pydantic models in ``sluice.contracts.events`` stay the contract. These msgspec structs mirror them field by field
and constraint by constraint, decode a thousand-item message in one C pass, and keep each item's ``input``
and ``output`` as the raw JSON they arrived as (``msgspec.Raw``): the processor decodes an input only to hand
it to the handler, the aggregator copies both into PostgreSQL untouched. A message the fast decoder refuses
is decided by the contract itself, so what is accepted, and the reason given for what is not, are the
contract's; ``tests/unit/shared/test_wire.py`` checks that the two agree.
"""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import msgspec
from msgspec import Meta, Raw

from sluice.contracts.events import (
    MAX_BATCH_SIZE,
    BatchProcessed,
    CancelJob,
    ItemResult,
    ItemStatus,
    Priority,
    TaskBatch,
    TaskItem,
    decode,
    results_topic_message,
    task_batch,
    utc_now,
)

NonNegative = Annotated[int, Meta(ge=0)]
Aware = Annotated[datetime, Meta(tz=True)]
Tenant = Annotated[str, Meta(min_length=1, max_length=200)]
NULL = Raw(b"null")


class WireItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """TaskItem."""

    index: NonNegative
    input: Raw
    attempt: Annotated[int, Meta(ge=1)] = 1
    first_failed_at: Aware | None = None
    generation: NonNegative = 0


class WireTaskBatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """TaskBatch."""

    tenant: Tenant
    job_id: UUID
    kind: str
    batch_index: NonNegative
    items: Annotated[list[WireItem], Meta(min_length=1, max_length=MAX_BATCH_SIZE)]
    type: Literal["task.batch"] = "task.batch"
    event_id: UUID = msgspec.field(default_factory=uuid4)
    schema_version: Literal[1] = 1
    occurred_at: Aware = msgspec.field(default_factory=utc_now)
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    priority: Priority = Priority.NORMAL


class WireResult(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """ItemResult; ``input`` and ``output`` default to JSON null, as the contract's None."""

    index: NonNegative
    status: ItemStatus
    input: Raw = NULL
    output: Raw = NULL
    error: str | None = None
    error_type: str | None = None
    attempts: NonNegative = 1
    duration_ms: Annotated[float, Meta(ge=0)] = 0.0
    generation: NonNegative = 0
    fingerprint: Annotated[str, Meta(max_length=200)] | None = None


class WireBatchProcessed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """BatchProcessed (schema 1 or 2); ``type`` is required, as the results topic's union of contracts needs it."""

    type: Literal["batch.processed"]
    tenant: Tenant
    job_id: UUID
    kind: str
    batch_index: NonNegative
    results: Annotated[list[WireResult], Meta(min_length=1, max_length=MAX_BATCH_SIZE)]
    event_id: UUID = msgspec.field(default_factory=uuid4)
    schema_version: Literal[1, 2] = 2
    occurred_at: Aware = msgspec.field(default_factory=utc_now)


_task_batch = msgspec.json.Decoder(WireTaskBatch)
_batch_processed = msgspec.json.Decoder(WireBatchProcessed)
_encoder = msgspec.json.Encoder()
_value = msgspec.json.Decoder()


def decode_task_batch(raw: bytes | None) -> WireTaskBatch:
    """A tasks-topic (or retry-topic) message; raises ValueError with the contract's reason."""
    if raw:
        try:
            return _task_batch.decode(raw)
        except msgspec.DecodeError:
            pass  # the contract decides (it coerces a few things the strict decoder does not)
    return wire_task_batch(decode(task_batch, raw, "TaskBatch"))


def decode_results_message(raw: bytes | None) -> WireBatchProcessed | CancelJob:
    """A results-topic message; raises ValueError with the contract's reason. Cancels are rare: the contract
    decodes them."""
    if raw:
        try:
            return _batch_processed.decode(raw)
        except msgspec.DecodeError:
            pass
    message = decode(results_topic_message, raw, "results-topic event")
    return wire_batch_processed(message) if isinstance(message, BatchProcessed) else message


def wire_task_batch(batch: TaskBatch) -> WireTaskBatch:
    return _task_batch.decode(batch.model_dump_json())


def wire_batch_processed(message: BatchProcessed) -> WireBatchProcessed:
    return _batch_processed.decode(message.model_dump_json())


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


def value_of(raw: Raw) -> Any:
    """The Python value of a raw JSON field (large integers stay exact)."""
    return _value.decode(raw)


def contract_item(item: WireItem) -> TaskItem:
    """The item as the contract's model, for the paths that are not hot: retries, dead letters, failures."""
    return TaskItem(
        index=item.index,
        input=value_of(item.input),
        attempt=item.attempt,
        first_failed_at=item.first_failed_at,
        generation=item.generation,
    )


def contract_batch(batch: WireTaskBatch, items: list[TaskItem]) -> TaskBatch:
    """The batch's envelope around ``items`` (a retry or a dead letter of some of its items)."""
    return TaskBatch(
        event_id=batch.event_id, tenant=batch.tenant, job_id=batch.job_id, occurred_at=batch.occurred_at,
        kind=batch.kind, batch_index=batch.batch_index, options=batch.options, priority=batch.priority, items=items,
    )  # fmt: skip


def contract_result(result: WireResult) -> ItemResult:
    return ItemResult(
        index=result.index, status=result.status, input=value_of(result.input), output=value_of(result.output),
        error=result.error, error_type=result.error_type, attempts=result.attempts, duration_ms=result.duration_ms,
        generation=result.generation, fingerprint=result.fingerprint,
    )  # fmt: skip


def wire_result(result: ItemResult) -> WireResult:
    return msgspec.json.decode(result.model_dump_json(), type=WireResult)
