"""Concurrent submits of one tenant sharing one admission statement, over the real database."""

import asyncio
import itertools
import uuid

import asyncpg

from services.intake.submission.admission import TenantLoad, admit
from services.intake.submission.group_commit import GroupedAdmissions
from shared.errors import WaitingLineFull
from shared.plans import PlanDefaults
from shared.records import NewJob
from shared.stores.admission import AdmissionLimits, AdmissionStore, GroupEntry
from shared.stores.jobs import AlreadyExists, Created
from tests.support.jobs import new_job

ONE_AND_ONE = AdmissionLimits(max_active_jobs=1, max_waiting_jobs=1, retry_after_s=30)


def entry(job: NewJob, limits: AdmissionLimits = ONE_AND_ONE, payload: bytes | None = b"{}") -> GroupEntry:
    return GroupEntry(job, limits, [(i, 2, payload) for i in range(job.total_batches)], b"{}")  # type: ignore[misc]


async def test_concurrent_submits_are_counted_one_by_one_and_a_refusal_or_replay_leaves_the_others_stored(
    db: asyncpg.Pool,
) -> None:
    grouped = GroupedAdmissions(AdmissionStore(db), max_group=64)
    jobs = [new_job(total_items=4, batch_size=2, idempotency_key=f"k{i}") for i in range(4)]
    replay = new_job(total_items=4, batch_size=2, idempotency_key="k0")

    outcomes = await asyncio.gather(*(grouped.register(entry(job)) for job in [*jobs, replay]))

    created = [o for o in outcomes if isinstance(o, Created)]
    assert [(o.job.job_id, o.job.status.value) for o in created] == [
        (jobs[0].job_id, "queued"), (jobs[1].job_id, "waiting"),
    ]  # fmt: skip
    refused = [o for o in outcomes if isinstance(o, WaitingLineFull)]
    assert len(refused) == 2 and all(o.retry_after_s == 30 for o in refused)
    assert isinstance(outcomes[-1], AlreadyExists) and outcomes[-1].job.job_id == jobs[0].job_id
    assert await db.fetchval("SELECT count(*) FROM jobs") == 2
    backlog = await db.fetch("SELECT job_id, batch_index, held FROM task_backlog ORDER BY job_id, batch_index")
    assert sorted((r["job_id"], r["batch_index"], r["held"]) for r in backlog) == sorted(
        [(jobs[0].job_id, 0, False), (jobs[0].job_id, 1, False), (jobs[1].job_id, 0, True), (jobs[1].job_id, 1, True)]
    ), "each job gets its own batches, held while it waits"


async def test_a_later_job_of_the_group_with_an_earlier_ones_key_gets_that_one(db: asyncpg.Pool) -> None:
    store = AdmissionStore(db)
    first, again = new_job(idempotency_key="same"), new_job(idempotency_key="same")
    wide = AdmissionLimits(max_active_jobs=10, max_waiting_jobs=10, retry_after_s=30)

    outcomes = await store.register_group("acme", [entry(first, wide), entry(again, wide)])

    assert isinstance(outcomes[0], Created) and isinstance(outcomes[1], AlreadyExists)
    assert outcomes[1].job.job_id == first.job_id == outcomes[0].job.job_id
    assert outcomes[0].job.accepted_at is not None and outcomes[0].job.options == {"rounds": 2}


async def test_a_database_error_in_a_group_fails_every_caller_of_it_and_stores_nothing(db: asyncpg.Pool) -> None:
    grouped = GroupedAdmissions(AdmissionStore(db), max_group=64)
    good, bad = new_job(total_items=2, batch_size=2), new_job(total_items=2, batch_size=2)

    # Both are queued before the first round starts, so they share its statement; bad's NULL payload breaks it.
    results = await asyncio.gather(
        grouped.register(entry(good)), grouped.register(entry(bad, payload=None)), return_exceptions=True
    )

    assert all(isinstance(r, asyncpg.NotNullViolationError) for r in results), results
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0
    assert await db.fetchval("SELECT count(*) FROM task_backlog") == 0
    after = await grouped.register(entry(new_job(total_items=2, batch_size=2)))
    assert isinstance(after, Created), "the next round works again"


async def test_the_database_decides_as_admit_does_for_every_load_and_plan(db: asyncpg.Pool) -> None:
    """sluice_admit_group (migration 011) mirrors services/intake/submission/admission.py's admit; a grid of both."""
    store = AdmissionStore(db)
    for active, waiting, max_active, max_waiting in itertools.product(range(3), range(3), (1, 2), range(3)):
        tenant = f"t-{uuid.uuid4().hex[:8]}"
        statuses = ["running"] * active + ["waiting"] * waiting + ["completed"]  # a finished job counts for nothing
        await db.executemany(
            "INSERT INTO jobs (job_id, tenant, kind, source, total_items, total_batches, status)"
            " VALUES ($1, $2, 'bench.noop', 'rest', 1, 1, $3)",
            [(uuid.uuid4(), tenant, status) for status in statuses],
        )
        limits = AdmissionLimits(max_active, max_waiting, retry_after_s=7)
        plan = PlanDefaults().plan(max_active_jobs=max_active, max_waiting_jobs=max_waiting)
        try:
            expected: object = admit(TenantLoad(active, waiting), plan, 7)
        except WaitingLineFull as refusal:
            expected = refusal

        [outcome] = await store.register_group(tenant, [entry(new_job(tenant=tenant), limits)])

        case = (active, waiting, max_active, max_waiting)
        if isinstance(expected, WaitingLineFull):
            assert isinstance(outcome, WaitingLineFull), case
            assert str(outcome) == str(expected), case
        else:
            assert isinstance(outcome, Created) and outcome.job.status is expected, case
