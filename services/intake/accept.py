"""JobAcceptor: registers a job, publishes its batches with acks=all, and only then calls it accepted."""

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from faststream.kafka import KafkaBroker
from pydantic import JsonValue

from services.intake.logic import count_batches, split_into_batches
from shared.config import TopicNames
from shared.errors import BrokerUnavailable, InvalidJob
from shared.events import Priority
from shared.kafka import SendWindow
from shared.stores.jobs import AlreadyExists, JobRecord, JobStore, NewJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobDraft:
    job_id: UUID
    tenant: str
    kind: str
    options: dict[str, JsonValue]
    priority: Priority
    callback_url: str | None
    source: str
    idempotency_key: str | None
    fingerprint: str | None
    total_items: int


@dataclass(frozen=True)
class Acceptance:
    job: JobRecord
    replayed: bool
    """True when an earlier request with the same Idempotency-Key (or job id) already got the job accepted."""


@dataclass
class JobAcceptor:
    store: JobStore
    broker: KafkaBroker
    topics: TopicNames
    batch_size: int
    publish_window: int
    stall_timeout_s: float
    kind_batch_sizes: Mapping[str, int] = field(default_factory=dict)
    """Kinds that declare their own batch size (Kind.batch_size) instead of ``batch_size``."""

    async def accept(self, draft: JobDraft, items: Callable[[], Iterable[JsonValue]]) -> Acceptance:
        """1. insert the job row (so status answers at once); 2. publish every batch and wait for every ack;
        3. mark the job accepted. If 2 fails, the job ends failed, its Idempotency-Key is released and
        BrokerUnavailable propagates: no caller is told "accepted" for a job that is not durably published.
        A repeat of a job whose publishing never finished publishes it again; the pipeline is idempotent."""
        total_batches = count_batches(draft.total_items, self.kind_batch_sizes.get(draft.kind, self.batch_size))
        outcome = await self.store.create(
            NewJob(
                job_id=draft.job_id, tenant=draft.tenant, kind=draft.kind, priority=draft.priority,
                options=draft.options, callback_url=draft.callback_url, source=draft.source,
                idempotency_key=draft.idempotency_key, request_fingerprint=draft.fingerprint,
                total_items=draft.total_items, total_batches=total_batches,
            )
        )  # fmt: skip
        job = outcome.job
        if isinstance(outcome, AlreadyExists):
            if draft.idempotency_key and job.request_fingerprint != draft.fingerprint:
                raise InvalidJob("Idempotency-Key was already used for a different request", field="Idempotency-Key")
            if job.accepted or job.status.is_terminal:
                return Acceptance(job, replayed=True)
            log.info("job %s was registered but not fully published; publishing it again", job.job_id)
        await self._publish(job, items())
        await self.store.mark_accepted(job.job_id)
        refreshed = await self.store.get(job.tenant, job.job_id)
        return Acceptance(refreshed or job, replayed=False)

    async def _publish(self, job: JobRecord, items: Iterable[JsonValue]) -> None:
        window = SendWindow(self.broker, self.publish_window, self.stall_timeout_s)
        key_prefix = str(job.job_id)
        try:
            for batch in split_into_batches(
                job_id=job.job_id, tenant=job.tenant, kind=job.kind, options=job.options,
                priority=job.priority, items=items, batch_size=self.kind_batch_sizes.get(job.kind, self.batch_size),
            ):  # fmt: skip
                key = f"{key_prefix}:{batch.batch_index}".encode()
                await window.send(batch.model_dump_json().encode(), self.topics.tasks, key=key)
            await window.flush()
        except BrokerUnavailable as exc:
            window.abandon()
            await self.store.mark_rejected(job.job_id, f"not accepted: {exc.detail}")
            raise
