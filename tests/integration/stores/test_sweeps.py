"""The scheduler's sweeps over the real per-test database, driven with explicit times instead of sleeps."""

import asyncio
from datetime import timedelta
from uuid import UUID

import asyncpg
import pytest

from services.scheduler.app import Sweeper
from services.scheduler.logic import SweepPolicy
from shared.records import JobRecord
from shared.stores.jobs import Created, JobStore
from shared.stores.results import ResultStore
from shared.stores.sweeps import SweepStore
from sluice.contracts.events import ItemResult, ItemStatus, JobStatus
from tests.support.results import results_message

S, F = ItemStatus.SUCCEEDED, ItemStatus.FAILED
WINDOW_S = 300.0
DEFAULT_TIMEOUT_S = 1800.0


@pytest.fixture
def sweeps(db: asyncpg.Pool) -> SweepStore:
    return SweepStore(db)


@pytest.fixture
def timed_job(job_store: JobStore, job_request):
    """A job created and accepted as intake does, with options.job_timeout_s when given."""

    async def make(total_items: int = 6, job_timeout_s: float | None = None) -> JobRecord:
        options = {} if job_timeout_s is None else {"job_timeout_s": job_timeout_s}
        created = await job_store.create(job_request(total_items=total_items).model_copy(update={"options": options}))
        assert isinstance(created, Created)
        await job_store.mark_accepted(created.job.job_id)
        return await _job(job_store, created.job.job_id)

    return make


async def _job(job_store: JobStore, job_id: UUID) -> JobRecord:
    job = await job_store.get("acme", job_id)
    assert job is not None
    return job


async def _record(result_store: ResultStore, job_id: UUID, statuses: dict[int, ItemStatus]) -> None:
    results = [
        ItemResult(index=index, status=status, error=None if status is S else "boom")
        for index, status in statuses.items()
    ]
    await result_store.record(
        [results_message(tenant="acme", job_id=job_id, kind="bench.noop", batch_index=0, results=results)]
    )


async def _rows(db: asyncpg.Pool, job_id: UUID) -> dict[int, tuple[str, str | None]]:
    rows = await db.fetch("SELECT item_index, status, error FROM item_results WHERE job_id = $1", job_id)
    return {row["item_index"]: (row["status"], row["error"]) for row in rows}


async def _sweep(sweeps: SweepStore, now):
    return await sweeps.sweep(now, default_timeout_s=DEFAULT_TIMEOUT_S, stall_window_s=WINDOW_S)


async def test_a_job_past_its_deadline_gets_a_timed_out_row_for_exactly_its_missing_items(
    timed_job, result_store, job_store, sweeps, db
):
    job = await timed_job(total_items=6, job_timeout_s=60)
    await _record(result_store, job.job_id, {0: S, 2: F})
    now = job.created_at + timedelta(seconds=61)

    outcome = await _sweep(sweeps, now)

    rows = await _rows(db, job.job_id)
    assert sorted(rows) == [0, 1, 2, 3, 4, 5]
    assert {index for index, (status, _) in rows.items() if status == "timed_out"} == {1, 3, 4, 5}
    assert rows[1] == ("timed_out", "job timed out after 60 s")
    stored = await _job(job_store, job.job_id)
    assert stored.status is JobStatus.PARTIALLY_FAILED
    assert (stored.succeeded, stored.failed, stored.timed_out) == (1, 1, 4)
    assert stored.counts.pending == 0
    assert stored.error == "timed out after 60 s: 4 items unfinished"
    assert stored.finished_at == now
    assert [(j.job_id, j.unfinished) for j in outcome.timed_out] == [(job.job_id, 4)]
    assert [state.job_id for state in await result_store.unannounced()] == [job.job_id]


async def test_a_timed_out_job_where_nothing_succeeded_ends_failed(timed_job, result_store, job_store, sweeps, db):
    job = await timed_job(total_items=3, job_timeout_s=5)
    await _record(result_store, job.job_id, {1: F})

    await _sweep(sweeps, job.created_at + timedelta(seconds=5))

    stored = await _job(job_store, job.job_id)
    assert (stored.status, stored.succeeded, stored.failed, stored.timed_out) == (JobStatus.FAILED, 0, 1, 2)
    assert stored.error == "timed out after 5 s: 2 items unfinished"
    assert len(await _rows(db, job.job_id)) == 3


async def test_a_job_before_its_deadline_is_untouched(timed_job, job_store, sweeps, db):
    job = await timed_job(total_items=4, job_timeout_s=60)

    outcome = await _sweep(sweeps, job.created_at + timedelta(seconds=59))

    assert outcome.swept and outcome.timed_out == ()
    stored = await _job(job_store, job.job_id)
    assert (stored.status, stored.timed_out, stored.finished_at) == (JobStatus.QUEUED, 0, None)
    assert await _rows(db, job.job_id) == {}


async def test_a_job_without_a_timeout_option_gets_the_default_deadline(timed_job, job_store, sweeps):
    job = await timed_job(total_items=2)
    assert job.deadline_at is None

    await _sweep(sweeps, job.created_at)
    outcome = await _sweep(sweeps, job.created_at + timedelta(seconds=DEFAULT_TIMEOUT_S))

    stored = await _job(job_store, job.job_id)
    assert stored.deadline_at == job.created_at + timedelta(seconds=DEFAULT_TIMEOUT_S)
    assert [j.job_id for j in outcome.timed_out] == [job.job_id]
    assert stored.error == f"timed out after {DEFAULT_TIMEOUT_S:g} s: 2 items unfinished"


async def test_a_completed_job_is_untouched_by_a_sweep_after_its_deadline(
    timed_job, result_store, job_store, sweeps, db
):
    job = await timed_job(total_items=2, job_timeout_s=1)
    await _record(result_store, job.job_id, {0: S, 1: S})
    completed = await _job(job_store, job.job_id)

    outcome = await _sweep(sweeps, job.created_at + timedelta(hours=1))

    assert outcome.timed_out == ()
    assert await _job(job_store, job.job_id) == completed
    assert {status for status, _ in (await _rows(db, job.job_id)).values()} == {"succeeded"}


async def test_a_late_result_for_a_timed_out_item_changes_nothing(timed_job, result_store, job_store, sweeps, db):
    job = await timed_job(total_items=2, job_timeout_s=1)
    await _record(result_store, job.job_id, {0: S})
    await _sweep(sweeps, job.created_at + timedelta(seconds=2))
    timed_out = await _job(job_store, job.job_id)

    await _record(result_store, job.job_id, {1: S})

    assert await _job(job_store, job.job_id) == timed_out
    assert (await _rows(db, job.job_id))[1][0] == "timed_out"


async def test_a_redriven_result_replaces_a_timed_out_row_and_moves_it_off_the_timed_out_counter(
    timed_job, result_store, job_store, sweeps, db
):
    job = await timed_job(total_items=2, job_timeout_s=1)
    await _record(result_store, job.job_id, {0: S})
    await _sweep(sweeps, job.created_at + timedelta(seconds=2))
    redriven = ItemResult(index=1, status=S, generation=1)

    await result_store.record(
        [results_message(tenant="acme", job_id=job.job_id, kind="bench.noop", batch_index=0, results=[redriven])]
    )

    stored = await _job(job_store, job.job_id)
    assert (stored.succeeded, stored.failed, stored.timed_out, stored.status) == (2, 0, 0, JobStatus.COMPLETED)
    assert (await _rows(db, job.job_id))[1] == ("succeeded", None)


async def test_a_running_job_without_results_for_the_window_is_stalled_until_progress_resumes(
    timed_job, result_store, job_store, sweeps
):
    job = await timed_job(total_items=5)
    await _record(result_store, job.job_id, {0: S})
    running = await _job(job_store, job.job_id)
    assert running.last_progress_at is not None and running.stalled_since is None
    quiet = running.last_progress_at + timedelta(seconds=WINDOW_S + 1)

    first = await _sweep(sweeps, quiet)
    again = await _sweep(sweeps, quiet + timedelta(seconds=30))

    stalled = await _job(job_store, job.job_id)
    assert stalled.stalled_since == running.last_progress_at + timedelta(seconds=WINDOW_S)
    assert [j.job_id for j in first.newly_stalled] == [job.job_id]
    assert again.newly_stalled == ()  # reported once
    assert await sweeps.stalled_count() == 1

    await _record(result_store, job.job_id, {1: S})
    progressed = await _job(job_store, job.job_id)
    cleared = await _sweep(sweeps, progressed.last_progress_at + timedelta(seconds=10))

    assert (await _job(job_store, job.job_id)).stalled_since is None
    assert cleared.unstalled == 1
    assert await sweeps.stalled_count() == 0


async def test_a_running_job_with_recent_results_is_not_stalled(timed_job, result_store, job_store, sweeps):
    job = await timed_job(total_items=5)
    await _record(result_store, job.job_id, {0: S})
    running = await _job(job_store, job.job_id)

    outcome = await _sweep(sweeps, running.last_progress_at + timedelta(seconds=WINDOW_S - 1))

    assert outcome.newly_stalled == ()
    assert (await _job(job_store, job.job_id)).stalled_since is None


async def test_the_purge_removes_only_jobs_finished_before_the_cutoff_with_their_results(
    timed_job, result_store, job_store, sweeps, db
):
    old, recent, running = (
        await timed_job(total_items=7),
        await timed_job(total_items=2),
        await timed_job(total_items=3),
    )
    await _record(result_store, old.job_id, dict.fromkeys(range(7), S))
    await _record(result_store, recent.job_id, {0: S, 1: S})
    await _record(result_store, running.job_id, {0: S})
    finished = (await _job(job_store, recent.job_id)).finished_at
    await db.execute("UPDATE jobs SET finished_at = $2 WHERE job_id = $1", old.job_id, finished - timedelta(days=31))

    purged = await sweeps.purge_finished(finished - timedelta(days=30), chunk=3)

    assert (purged.jobs, purged.results) == (1, 7)
    assert await job_store.get("acme", old.job_id) is None
    assert await _rows(db, old.job_id) == {}
    assert len(await _rows(db, recent.job_id)) == 2 and len(await _rows(db, running.job_id)) == 1
    assert await sweeps.purge_finished(finished - timedelta(days=30), chunk=3) == type(purged)()


async def test_two_concurrent_sweeps_time_a_job_out_once(timed_job, result_store, job_store, sweeps, db):
    job = await timed_job(total_items=50, job_timeout_s=10)
    await _record(result_store, job.job_id, {0: S, 1: S})
    now = job.created_at + timedelta(seconds=11)

    outcomes = await asyncio.gather(_sweep(sweeps, now), _sweep(SweepStore(db), now))

    assert sum(len(outcome.timed_out) for outcome in outcomes) == 1
    stored = await _job(job_store, job.job_id)
    assert (stored.succeeded, stored.timed_out, stored.status) == (2, 48, JobStatus.PARTIALLY_FAILED)
    assert len(await _rows(db, job.job_id)) == 50


async def test_one_scheduler_sweep_times_out_due_jobs_logs_new_stalls_and_purges_expired_jobs(
    timed_job, result_store, job_store, db, caplog
):
    sweeper = Sweeper(
        SweepStore(db), SweepPolicy(job_timeout_s=60, stall_window_s=WINDOW_S, retention_days=30, purge_chunk_rows=2)
    )
    due, stalling, expired = (
        await timed_job(total_items=3),
        await timed_job(total_items=3),
        await timed_job(total_items=3),
    )
    await _record(result_store, stalling.job_id, {0: S})
    await _record(result_store, expired.job_id, {0: S, 1: S, 2: S})
    now = (await _job(job_store, stalling.job_id)).last_progress_at + timedelta(seconds=WINDOW_S + 1)
    await db.execute("UPDATE jobs SET created_at = $2 WHERE job_id = $1", due.job_id, now - timedelta(seconds=61))
    await db.execute("UPDATE jobs SET finished_at = $2 WHERE job_id = $1", expired.job_id, now - timedelta(days=31))
    await db.execute("UPDATE jobs SET created_at = $2 WHERE job_id = $1", stalling.job_id, now - timedelta(seconds=59))

    with caplog.at_level("INFO", logger="services.scheduler.app"):
        outcome, purged = await sweeper.run_once(now)

    assert [job.job_id for job in outcome.timed_out] == [due.job_id]
    assert (await _job(job_store, due.job_id)).status is JobStatus.FAILED
    assert [job.job_id for job in outcome.newly_stalled] == [stalling.job_id]
    assert (purged.jobs, purged.results) == (1, 3)
    assert await job_store.get("acme", expired.job_id) is None
    assert f"job {stalling.job_id} (tenant acme) stalled" in caplog.text
    assert "sweep: timed out 1 jobs (3 items unfinished); 1 newly stalled; purged 1 jobs and 3 results" in caplog.text
    assert "1 jobs stalled now" in caplog.text
