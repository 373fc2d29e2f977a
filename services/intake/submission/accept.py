"""JobAcceptor: admits a job (queued, waiting or 429) and stores it with its batches before calling it accepted."""

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from uuid import UUID

import orjson
from faststream.kafka import KafkaBroker
from pydantic import JsonValue

from services.intake.logic import count_batches
from services.intake.submission.admission import TenantLoad, admit
from services.intake.submission.batches import EncodedBatch, encode_batches
from services.intake.submission.broker_check import BrokerCheck
from services.intake.submission.group_commit import GroupedAdmissions
from shared.errors import BrokerUnavailable, InvalidJob
from shared.records import JobRecord, NewJob
from shared.stores.admission import AdmissionLimits, AdmissionStore, BacklogRow, GroupEntry
from shared.stores.jobs import AlreadyExists
from shared.tenant_plans import TenantPlans
from shared.tracing import current_traceparent, untraced_root
from sluice.contracts.events import JobStatus, Priority
from sluice.contracts.headers import JOB_TRACE_HEADER, SUBMITTED_AT_HEADER
from sluice.errors import SluiceError


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
    batch_size: int | None = None
    """Items per TaskBatch (the tenant's plan may lower it); None: the acceptor's own."""


@dataclass(frozen=True)
class Acceptance:
    job: JobRecord
    replayed: bool
    """True when an earlier request with the same Idempotency-Key (or job id) already got the job accepted."""


@dataclass
class JobAcceptor:
    admissions: AdmissionStore
    plans: TenantPlans
    broker: KafkaBroker
    batch_size: int
    stall_timeout_s: float
    waiting_full_retry_after_s: int
    kind_batch_sizes: Mapping[str, int] = field(default_factory=dict)
    """Kinds that declare their own batch size (Kind.batch_size), for drafts that bring no size of their own."""
    broker_check_ttl_s: float = 0.0
    """How long a successful broker ping is trusted (0: ping on every accept); see BrokerCheck."""
    admission_group_max: int = 64
    """Most jobs of one tenant registered in one transaction (see GroupedAdmissions)."""

    def __post_init__(self) -> None:
        self._broker_check = BrokerCheck(self.broker, self.stall_timeout_s, self.broker_check_ttl_s)
        self._grouped = GroupedAdmissions(self.admissions, self.admission_group_max)

    async def accept(
        self, draft: JobDraft, items: Callable[[], Iterable[bytes]], *, grouped: bool = False
    ) -> Acceptance:
        """1. refuse (BrokerUnavailable, 503) while the broker is unreachable, so no caller is told "accepted"
        for work that cannot start (a success is trusted for ``broker_check_ttl_s``); 2. in one transaction
        under the tenant's admission lock: decide queued, waiting or 429 (WaitingLineFull) by the tenant's
        plan, insert the job row and COPY every batch into the backlog; 3. answer. The dispatcher publishes
        the batches from the backlog by fair share.

        ``grouped``: the job may share its admission with concurrent submits of the tenant (GroupedAdmissions:
        one statement, the same rules); only for items held in memory, which stay readable if the caller goes
        away.

        ``items()`` gives each validated item's JSON (``item_json.encode_item``), in order."""
        batch_size = draft.batch_size or self.kind_batch_sizes.get(draft.kind) or self.batch_size
        total_batches = count_batches(draft.total_items, batch_size)
        new_job = NewJob(
            job_id=draft.job_id, tenant=draft.tenant, kind=draft.kind, priority=draft.priority,
            options=draft.options, callback_url=draft.callback_url, source=draft.source,
            idempotency_key=draft.idempotency_key, request_fingerprint=draft.fingerprint,
            total_items=draft.total_items, total_batches=total_batches,
        )  # fmt: skip
        if not await self._broker_check.reachable():
            raise BrokerUnavailable(f"no answer within {self.stall_timeout_s:g}s")
        plan = await self.plans.plan_for(draft.tenant)
        headers = _task_headers()  # here: a group's transaction runs in another task, outside this trace context

        if grouped:
            limits = AdmissionLimits(plan.max_active_jobs, plan.max_waiting_jobs, self.waiting_full_retry_after_s)
            batches = [(b.batch_index, b.items, b.payload) for b in self._encode(new_job, items(), batch_size)]
            outcome = await self._grouped.register(GroupEntry(new_job, limits, batches, headers))
            if isinstance(outcome, SluiceError):
                raise outcome
        else:

            def decide(active: int, waiting: int) -> JobStatus:
                return admit(TenantLoad(active, waiting), plan, self.waiting_full_retry_after_s)

            def backlog(status: JobStatus) -> Iterator[BacklogRow]:
                held = status is JobStatus.WAITING
                return self._backlog_rows(new_job, items(), batch_size, held=held, headers=headers)

            outcome = await self.admissions.register(new_job, decide=decide, backlog=backlog)
        if isinstance(outcome, AlreadyExists):
            job = outcome.job
            if draft.idempotency_key and job.request_fingerprint != draft.fingerprint:
                raise InvalidJob("Idempotency-Key was already used for a different request", field="Idempotency-Key")
            return Acceptance(job, replayed=True)
        return Acceptance(outcome.job, replayed=False)

    def _backlog_rows(
        self, job: NewJob, items: Iterable[bytes], batch_size: int, *, held: bool, headers: bytes
    ) -> Iterator[BacklogRow]:
        for batch in self._encode(job, items, batch_size):
            yield (
                job.job_id, batch.batch_index, job.tenant, job.priority.value, job.kind, batch.items, held,
                batch.payload, headers,
            )  # fmt: skip

    @staticmethod
    def _encode(job: NewJob, items: Iterable[bytes], batch_size: int) -> Iterator[EncodedBatch]:
        return encode_batches(
            job_id=job.job_id, tenant=job.tenant, kind=job.kind, options=job.options,
            priority=job.priority, items=items, batch_size=batch_size,
        )  # fmt: skip


def _task_headers() -> bytes:
    """The headers every batch of the job is published with: its submit time and its root span (the span
    accepting the job; with tracing off, an unsampled root that only gives the job its trace id)."""
    root = current_traceparent() or untraced_root()
    return orjson.dumps({SUBMITTED_AT_HEADER: str(time.time_ns() // 1_000_000), JOB_TRACE_HEADER: root})
