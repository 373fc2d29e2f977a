"""The dead-letter indexer: reads both dead-letter topics and indexes every message, decodable or not."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from aiokafka import ConsumerRecord

from shared.metrics import SluiceMetrics
from shared.stores.dead_letters import DeadLetterStore, NewDeadLetter
from sluice.contracts.events import decode, results_topic_message, task_batch
from sluice.contracts.headers import (
    ATTEMPTS_HEADER,
    ERROR_TYPE_HEADER,
    FIRST_FAILURE_HEADER,
    JOB_ID_HEADER,
    KIND_HEADER,
    LAST_FAILURE_HEADER,
    REASON_HEADER,
    TENANT_HEADER,
    TRACE_ID_HEADER,
)
from sluice.contracts.topics import TopicNames

RAW_EXCERPT_CHARS = 2000


def _clean(value: str) -> str:
    return value.replace("\x00", "\ufffd")


def _headers(raw: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    return {_clean(name): _clean((value or b"").decode("utf-8", "replace")) for name, value in raw or ()}


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().lstrip("-").isdigit() else None


def _time(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _uuid(value: str | None) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


def dead_letter_from(
    topic: str, partition: int, offset: int, value: bytes | None, headers: Mapping[str, str], topics: TopicNames
) -> NewDeadLetter:
    """What to index for one dead-letter message; an undecodable one keeps its reason and an excerpt."""
    fields: dict[str, Any] = {}
    payload: dict[str, Any] | None = None
    problem: str | None = None
    try:
        if topic == topics.results_dlq:
            event = decode(results_topic_message, value, "results-topic event")
            fields = {"job_id": event.job_id, "tenant": event.tenant, "kind": getattr(event, "kind", None)}
        else:
            event = decode(task_batch, value, "TaskBatch")
            fields = {"job_id": event.job_id, "tenant": event.tenant, "kind": event.kind}
            if len(event.items) == 1:
                item = event.items[0]
                fields |= {"item_index": item.index, "generation": item.generation, "attempts": item.attempt}
                fields |= {"first_failure_at": item.first_failed_at}
        payload = event.model_dump(mode="json")
    except ValueError as exc:
        problem = str(exc)
    header_fields = {
        "job_id": _uuid(headers.get(JOB_ID_HEADER)),
        "tenant": headers.get(TENANT_HEADER) or None,
        "kind": headers.get(KIND_HEADER) or None,
        "error_type": headers.get(ERROR_TYPE_HEADER) or None,
        "attempts": _int(headers.get(ATTEMPTS_HEADER)),
        "first_failure_at": _time(headers.get(FIRST_FAILURE_HEADER)),
        "last_failure_at": _time(headers.get(LAST_FAILURE_HEADER)),
        "trace_id": headers.get(TRACE_ID_HEADER) or None,
    }
    for name, header_value in header_fields.items():
        if header_value is not None:
            fields[name] = header_value  # the producer's headers are the record of the failure
    reason = headers.get(REASON_HEADER) or problem or "no reason given"
    excerpt = None
    if payload is None:
        excerpt = _clean((value or b"")[: RAW_EXCERPT_CHARS * 4].decode("utf-8", "replace")[:RAW_EXCERPT_CHARS])
    return NewDeadLetter(
        topic=topic, partition=partition, offset=offset, reason=_clean(reason[:4000]), headers=dict(headers),
        payload=payload, raw_excerpt=excerpt, **fields,
    )  # fmt: skip


@dataclass
class DeadLetterIndexer:
    store: DeadLetterStore
    topics: TopicNames
    metrics: SluiceMetrics | None = None

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """Index one poll of dead letters in one transaction; the offsets are committed after this returns."""
        letters = [
            dead_letter_from(r.topic, r.partition, r.offset, r.value, _headers(r.headers), self.topics) for r in records
        ]
        await self.store.index(letters)
        if self.metrics is not None:
            for letter in letters:
                self.metrics.dead_letters.add(1, {"topic": letter.topic, "error_type": letter.error_type or ""})
