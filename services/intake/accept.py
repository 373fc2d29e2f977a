"""JobAcceptor: admits a job (queued, waiting or 429) and stores it with its batches before calling it accepted."""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from uuid import UUID

from faststream.kafka import KafkaBroker
from pydantic import JsonValue

from services.intake.admission import TenantLoad, admit
from services.intake.logic import count_batches, split_into_batches
from services.intake.plan_source import PlanSource
from shared.errors import BrokerUnavailable, InvalidJob
from shared.events import JobStatus, Priority
from shared.stores.admission import AdmissionStore, BacklogRow
from shared.stores.jobs import AlreadyExists, JobRecord, NewJob


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
    admissions: AdmissionStore
    plans: PlanSource
    broker: KafkaBroker
    batch_size: int
    stall_timeout_s: float
    waiting_full_retry_after_s: int

    async def accept(self, draft: JobDraft, items: Callable[[], Iterable[JsonValue]]) -> Acceptance:
        """1. refuse (BrokerUnavailable, 503) while the broker is unreachable, so no caller is told "accepted"
        for work that cannot start; 2. in one transaction under the tenant's admission lock: decide queued,
        waiting or 429 (WaitingLineFull) by the tenant's plan, insert the job row and COPY every batch into
        the backlog; 3. answer. The dispatcher publishes the batches from the backlog by fair share."""
        total_batches = count_batches(draft.total_items, self.batch_size)
        new_job = NewJob(
            job_id=draft.job_id, tenant=draft.tenant, kind=draft.kind, priority=draft.priority,
            options=draft.options, callback_url=draft.callback_url, source=draft.source,
            idempotency_key=draft.idempotency_key, request_fingerprint=draft.fingerprint,
            total_items=draft.total_items, total_batches=total_batches,
        )  # fmt: skip
        if not await self.broker.ping(timeout=self.stall_timeout_s):
            raise BrokerUnavailable(f"no answer within {self.stall_timeout_s:g}s")
        plan = await self.plans.plan_for(draft.tenant)
        outcome = await self.admissions.register(
            new_job,
            decide=lambda active, waiting: admit(TenantLoad(active, waiting), plan, self.waiting_full_retry_after_s),
            backlog=lambda status: self._backlog_rows(new_job, items(), held=status is JobStatus.WAITING),
        )
        if isinstance(outcome, AlreadyExists):
            job = outcome.job
            if draft.idempotency_key and job.request_fingerprint != draft.fingerprint:
                raise InvalidJob("Idempotency-Key was already used for a different request", field="Idempotency-Key")
            return Acceptance(job, replayed=True)
        return Acceptance(outcome.job, replayed=False)

    def _backlog_rows(self, job: NewJob, items: Iterable[JsonValue], *, held: bool) -> Iterator[BacklogRow]:
        for batch in split_into_batches(
            job_id=job.job_id, tenant=job.tenant, kind=job.kind, options=job.options,
            priority=job.priority, items=items, batch_size=self.batch_size,
        ):  # fmt: skip
            yield (
                job.job_id, batch.batch_index, job.tenant, job.priority.value, job.kind, len(batch.items), held,
                batch.model_dump_json().encode(),
            )  # fmt: skip
