"""Concurrent submits of one tenant sharing an admission transaction, over the real database."""

import asyncio

import asyncpg

from services.intake.admission import TenantLoad, admit
from services.intake.admission_group import GroupedAdmissions
from shared.errors import WaitingLineFull
from shared.events import JobStatus
from shared.plans import PlanDefaults
from shared.stores.admission import Admission, AdmissionStore, BacklogRow
from shared.stores.jobs import AlreadyExists, Created, NewJob
from tests.integration.stores.conftest import new_job

PLAN = PlanDefaults().plan(max_active_jobs=1, max_waiting_jobs=1)


def admission(job: NewJob, payload: bytes | None = b"{}") -> Admission:
    def backlog(status: JobStatus) -> list[BacklogRow]:
        held = status is JobStatus.WAITING
        return [(job.job_id, i, job.tenant, job.priority.value, job.kind, 2, held, payload, b"{}")
                for i in range(job.total_batches)]  # fmt: skip

    return job, lambda active, waiting: admit(TenantLoad(active, waiting), PLAN, 30), backlog


async def test_concurrent_submits_are_counted_one_by_one_and_a_refusal_or_replay_leaves_the_others_stored(
    db: asyncpg.Pool,
) -> None:
    grouped = GroupedAdmissions(AdmissionStore(db), max_group=64)
    jobs = [new_job(total_items=2, batch_size=2, idempotency_key=f"k{i}") for i in range(4)]
    replay = new_job(total_items=2, batch_size=2, idempotency_key="k0")

    outcomes = await asyncio.gather(*(grouped.register("acme", admission(job)) for job in [*jobs, replay]))

    created = [o for o in outcomes if isinstance(o, Created)]
    assert sorted(o.job.status.value for o in created) == ["queued", "waiting"]
    assert sum(isinstance(o, WaitingLineFull) for o in outcomes) == 2
    assert isinstance(outcomes[-1], AlreadyExists) and outcomes[-1].job.job_id == jobs[0].job_id
    assert await db.fetchval("SELECT count(*) FROM jobs") == 2
    assert await db.fetchval("SELECT count(*) FROM task_backlog WHERE held") == 1


async def test_a_database_error_in_a_group_fails_every_caller_of_it_and_stores_nothing(db: asyncpg.Pool) -> None:
    grouped = GroupedAdmissions(AdmissionStore(db), max_group=64)
    good, bad = new_job(total_items=2, batch_size=2), new_job(total_items=2, batch_size=2)

    # Both are queued before the first round starts, so they share its transaction; bad's NULL payload breaks it.
    results = await asyncio.gather(
        grouped.register("acme", admission(good)), grouped.register("acme", admission(bad, None)),
        return_exceptions=True,
    )  # fmt: skip

    assert all(isinstance(r, asyncpg.NotNullViolationError) for r in results), results
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0
    assert await db.fetchval("SELECT count(*) FROM task_backlog") == 0
    after = await grouped.register("acme", admission(new_job(total_items=2, batch_size=2)))
    assert isinstance(after, Created), "the next round works again"
