"""The dispatch backlog over the real database: admission with held batches, release, credits back on record."""

import asyncpg
import pytest

from services.intake.submission.admission import TenantLoad, admit, promotions
from shared.errors import WaitingLineFull
from shared.plans import PlanDefaults
from shared.records import NewJob
from shared.stores.admission import AdmissionStore, BacklogRow
from shared.stores.backlog import BacklogStore
from shared.stores.jobs import Created
from shared.stores.results import ResultStore
from sluice.contracts.events import ItemResult, ItemStatus, JobStatus, Priority
from tests.support.jobs import new_job
from tests.support.results import results_message

PLAN = PlanDefaults().plan(max_active_jobs=1, max_waiting_jobs=1)


def rows(job: NewJob, status: JobStatus) -> list[BacklogRow]:
    held = status is JobStatus.WAITING
    return [
        (job.job_id, index, job.tenant, job.priority.value, job.kind, 2, held, b"{}", b"{}")
        for index in range(job.total_batches)
    ]


async def register(store: AdmissionStore, job: NewJob) -> Created:
    outcome = await store.register(
        job, decide=lambda active, waiting: admit(TenantLoad(active, waiting), PLAN, 30),
        backlog=lambda status: rows(job, status),
    )  # fmt: skip
    assert isinstance(outcome, Created)
    return outcome


async def test_a_job_over_the_active_limit_waits_with_its_batches_held_and_a_full_line_stores_nothing(
    db: asyncpg.Pool,
) -> None:
    store, backlog = AdmissionStore(db), BacklogStore()
    first = await register(store, new_job(total_items=4, batch_size=2))
    second = await register(store, new_job(total_items=6, batch_size=2))
    with pytest.raises(WaitingLineFull):
        await register(store, new_job(total_items=2, batch_size=2))

    async with db.acquire() as connection:
        counts = await backlog.counts(connection)

    assert (first.job.status, second.job.status) == (JobStatus.QUEUED, JobStatus.WAITING)
    assert counts.queued == {("acme", Priority.NORMAL, "bench.noop"): 2}, "the waiting job's 3 batches are held"
    assert await db.fetchval("SELECT count(*) FROM jobs") == 2
    assert await db.fetchval("SELECT count(*) FROM task_backlog") == 5


async def test_released_batches_count_in_flight_until_their_results_are_recorded_and_then_a_waiting_job_starts(
    db: asyncpg.Pool,
) -> None:
    store, backlog = AdmissionStore(db), BacklogStore()
    first = (await register(store, new_job(total_items=4, batch_size=2))).job
    second = (await register(store, new_job(total_items=2, batch_size=2))).job
    async with db.acquire() as connection:
        taken = await backlog.take(connection, [(("acme", Priority.NORMAL, "bench.noop"), 5)])
        await backlog.mark_released(connection, taken, [7, 3])
        in_flight_counts = await backlog.counts(connection)

        results = [
            results_message(
                tenant="acme", job_id=first.job_id, kind="bench.noop", batch_index=index,
                results=[ItemResult(index=2 * index + i, status=ItemStatus.SUCCEEDED) for i in range(2)],
            )
            for index in range(2)
        ]  # fmt: skip
        await ResultStore(db).record(results)
        after_record = await backlog.counts(connection)
        started = await store.promote_waiting(
            connection, "acme", lambda active, waiting: promotions(TenantLoad(active, waiting), PLAN)
        )
        await backlog.unhold(connection)
        after_promotion = await backlog.counts(connection)

    assert [(b.job_id, b.batch_index) for b in taken] == [(first.job_id, 0), (first.job_id, 1)]
    assert in_flight_counts.in_flight == {("acme", "bench.noop"): 2}
    assert in_flight_counts.partition_load == {(Priority.NORMAL, 7): 1, (Priority.NORMAL, 3): 1}
    assert after_record.in_flight == {} and after_record.queued == {} and after_record.partition_load == {}
    assert started == 1
    assert await db.fetchval("SELECT status FROM jobs WHERE job_id = $1", second.job_id) == "queued"
    assert after_promotion.queued == {("acme", Priority.NORMAL, "bench.noop"): 1}
