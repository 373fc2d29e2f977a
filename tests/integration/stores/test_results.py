import asyncio
from uuid import UUID, uuid4

import pytest

from shared.stores.jobs import JobStore
from sluice.contracts.events import CancelJob, ItemResult, ItemStatus, JobStatus
from tests.support.results import results_message

S, F, C = ItemStatus.SUCCEEDED, ItemStatus.FAILED, ItemStatus.CANCELLED


def _result(index: int, status: ItemStatus) -> ItemResult:
    if status is S:
        return ItemResult(index=index, status=S, input={"n": index}, output={"double": 2 * index}, duration_ms=1.5)
    if status is F:
        return ItemResult(index=index, status=F, input={"n": index}, error=f"boom {index}", error_type="ValueError")
    return ItemResult(index=index, status=C, input={"n": index}, error="job cancelled", attempts=0)


def _processed(job_id: UUID, statuses: dict[int, ItemStatus], *, tenant: str = "acme", batch_index: int = 0):
    return results_message(
        tenant=tenant,
        job_id=job_id,
        kind="bench.noop",
        batch_index=batch_index,
        results=[_result(index, status) for index, status in statuses.items()],
    )


async def _stored(job_store: JobStore, job_id: UUID) -> list[dict]:
    return [row async for page in job_store.iter_results(job_id) for row in page]


async def test_a_batch_written_twice_is_stored_and_counted_once(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=10)
    batch = _processed(job.job_id, {0: S, 1: S, 2: F})

    first = await result_store.record([batch])
    again = await result_store.record([batch])

    assert (first.inserted, first.duplicates) == (3, 0)
    assert (again.inserted, again.duplicates) == (0, 3)
    stored = await job_store.get("acme", job.job_id)
    assert (stored.succeeded, stored.failed, stored.cancelled) == (2, 1, 0)
    assert [row["item_index"] for row in await _stored(job_store, job.job_id)] == [0, 1, 2]


async def test_the_same_batch_twice_in_one_write_counts_once(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=10)
    batch = _processed(job.job_id, {0: S, 1: F})

    outcome = await result_store.record([batch, batch])

    assert (outcome.inserted, outcome.duplicates) == (2, 2)
    stored = await job_store.get("acme", job.job_id)
    assert (stored.succeeded, stored.failed) == (1, 1)


async def test_a_redelivery_mixing_old_and_new_results_counts_only_the_new(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=10)
    await result_store.record([_processed(job.job_id, {0: S, 1: S, 2: F, 3: S})])

    outcome = await result_store.record([_processed(job.job_id, {2: F, 3: S, 4: F, 5: S})])

    assert (outcome.inserted, outcome.duplicates) == (2, 2)
    stored = await job_store.get("acme", job.job_id)
    assert (stored.succeeded, stored.failed) == (4, 2)
    assert stored.status is JobStatus.RUNNING


async def test_a_redelivered_result_keeps_the_first_outcome_stored(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=3)
    await result_store.record([_processed(job.job_id, {0: F})])

    await result_store.record([_processed(job.job_id, {0: S})])

    (row,) = await _stored(job_store, job.job_id)
    assert (row["status"], row["error"]) == ("failed", "boom 0")
    stored = await job_store.get("acme", job.job_id)
    assert (stored.succeeded, stored.failed) == (0, 1)


async def test_concurrent_redeliveries_of_one_batch_count_once(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=50)
    batch = _processed(job.job_id, {n: S for n in range(50)})

    outcomes = await asyncio.gather(*(result_store.record([batch]) for _ in range(4)))

    assert sorted(o.inserted for o in outcomes) == [0, 0, 0, 50]
    assert sum(o.duplicates for o in outcomes) == 150
    assert sum(len(o.finished) for o in outcomes) == 1
    stored = await job_store.get("acme", job.job_id)
    assert (stored.succeeded, stored.status) == (50, JobStatus.COMPLETED)


async def test_results_are_stored_as_sent_and_read_back_in_item_order(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=3)
    await result_store.record([_processed(job.job_id, {2: C, 0: S, 1: F})])

    rows = await _stored(job_store, job.job_id)

    assert [row["item_index"] for row in rows] == [0, 1, 2]
    assert [row["status"] for row in rows] == ["succeeded", "failed", "cancelled"]
    assert rows[0]["input"] == {"n": 0} and rows[0]["output"] == {"double": 0}
    assert (rows[0]["error"], rows[0]["duration_ms"], rows[0]["attempts"]) == (None, 1.5, 1)
    assert (rows[1]["error"], rows[1]["error_type"], rows[1]["output"]) == ("boom 1", "ValueError", None)
    assert (rows[2]["attempts"], rows[2]["error"]) == (0, "job cancelled")


async def test_the_first_result_moves_a_queued_job_to_running(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=5)
    assert (job.status, job.started_at) == (JobStatus.QUEUED, None)

    outcome = await result_store.record([_processed(job.job_id, {0: S})])

    stored = await job_store.get("acme", job.job_id)
    assert stored.status is JobStatus.RUNNING
    assert stored.started_at is not None and stored.finished_at is None
    assert outcome.finished == []
    assert [state.status for state in outcome.jobs] == [JobStatus.RUNNING]


@pytest.mark.parametrize(
    ("mix", "status", "error"),
    [
        ([S, S, S, S], JobStatus.COMPLETED, None),
        ([S, F, S, S], JobStatus.PARTIALLY_FAILED, None),
        ([F, F, F, F], JobStatus.FAILED, "all 4 items failed"),
        ([S, C, S, S], JobStatus.PARTIALLY_FAILED, None),
    ],
    ids=["all-succeeded", "some-failed", "all-failed", "some-cancelled"],
)
async def test_a_job_finishes_exactly_when_its_last_result_arrives(
    accepted_job, result_store, job_store, mix, status, error
):
    job = await accepted_job(total_items=4)
    for index in range(3):
        outcome = await result_store.record([_processed(job.job_id, {index: mix[index]}, batch_index=index)])
        assert outcome.finished == []
        assert (await job_store.get("acme", job.job_id)).finished_at is None

    outcome = await result_store.record([_processed(job.job_id, {3: mix[3]}, batch_index=3)])

    (finished,) = outcome.finished
    assert (finished.job_id, finished.status, finished.error) == (job.job_id, status, error)
    assert finished.counts.done == 4
    stored = await job_store.get("acme", job.job_id)
    assert (stored.status, stored.error) == (status, error)
    assert stored.finished_at is not None


async def test_a_redelivery_after_completion_does_not_finish_the_job_again(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=2)
    batch = _processed(job.job_id, {0: S, 1: S})
    assert len((await result_store.record([batch])).finished) == 1
    finished_at = (await job_store.get("acme", job.job_id)).finished_at

    again = await result_store.record([batch])

    assert again.finished == []
    stored = await job_store.get("acme", job.job_id)
    assert (stored.status, stored.succeeded, stored.finished_at) == (JobStatus.COMPLETED, 2, finished_at)


async def test_one_write_spanning_several_jobs_counts_and_finishes_each(accepted_job, result_store, job_store):
    done, half = await accepted_job(total_items=2), await accepted_job(total_items=4)

    outcome = await result_store.record([_processed(done.job_id, {0: S, 1: F}), _processed(half.job_id, {0: S, 1: S})])

    assert outcome.inserted == 4
    assert [state.job_id for state in outcome.finished] == [done.job_id]
    assert {state.job_id: state.counts.done for state in outcome.jobs} == {done.job_id: 2, half.job_id: 2}
    assert (await job_store.get("acme", half.job_id)).status is JobStatus.RUNNING


async def test_results_of_a_job_with_no_row_are_not_written_and_are_reported(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=4)
    stranger = uuid4()

    outcome = await result_store.record([_processed(stranger, {0: S, 1: S}), _processed(job.job_id, {0: S})])

    assert outcome.unknown_jobs == {stranger}
    assert (outcome.inserted, outcome.duplicates) == (1, 0)
    assert [state.job_id for state in outcome.jobs] == [job.job_id]
    assert await _stored(job_store, stranger) == []
    assert len(await _stored(job_store, job.job_id)) == 1


async def test_a_cancel_ends_a_running_job_as_cancelled(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=6)
    await result_store.record([_processed(job.job_id, {0: S, 1: F})])

    outcome = await result_store.record([], [CancelJob(tenant="acme", job_id=job.job_id)])

    (finished,) = outcome.finished
    assert (finished.status, finished.error) == (JobStatus.CANCELLED, "cancelled by request")
    assert (finished.counts.succeeded, finished.counts.failed) == (1, 1)
    stored = await job_store.get("acme", job.job_id)
    assert stored.status is JobStatus.CANCELLED
    assert stored.finished_at is not None and stored.cancel_requested_at is not None


async def test_results_after_a_cancel_still_count_but_leave_the_job_cancelled(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=4)
    await result_store.record([_processed(job.job_id, {0: S})])
    await result_store.record([], [CancelJob(tenant="acme", job_id=job.job_id)])
    finished_at = (await job_store.get("acme", job.job_id)).finished_at

    outcome = await result_store.record([_processed(job.job_id, {1: C, 2: C, 3: S}, batch_index=1)])

    assert outcome.inserted == 3 and outcome.finished == []
    stored = await job_store.get("acme", job.job_id)
    assert (stored.status, stored.succeeded, stored.cancelled, stored.finished_at) == (
        JobStatus.CANCELLED,
        2,
        2,
        finished_at,
    )


async def test_cancelling_twice_or_after_the_job_finished_changes_nothing(accepted_job, result_store, job_store):
    cancelled, completed = await accepted_job(total_items=2), await accepted_job(total_items=1)
    await result_store.record([_processed(completed.job_id, {0: S})])
    await result_store.record([], [CancelJob(tenant="acme", job_id=cancelled.job_id)])

    outcome = await result_store.record(
        [],
        [
            CancelJob(tenant="acme", job_id=cancelled.job_id),
            CancelJob(tenant="acme", job_id=completed.job_id),
        ],
    )

    assert outcome.finished == []
    assert (await job_store.get("acme", completed.job_id)).status is JobStatus.COMPLETED
    assert (await job_store.get("acme", cancelled.job_id)).status is JobStatus.CANCELLED


async def test_a_queued_job_can_be_cancelled_before_any_result(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=3)

    outcome = await result_store.record([], [CancelJob(tenant="acme", job_id=job.job_id, reason="changed my mind")])

    assert [state.status for state in outcome.finished] == [JobStatus.CANCELLED]
    assert outcome.finished[0].counts.done == 0


async def test_finished_jobs_are_unannounced_until_marked_announced(accepted_job, result_store):
    completed, cancelled, running = [await accepted_job(total_items=n) for n in (1, 2, 3)]
    await result_store.record([_processed(completed.job_id, {0: S}), _processed(running.job_id, {0: S})])
    await result_store.record([], [CancelJob(tenant="acme", job_id=cancelled.job_id)])

    pending = await result_store.unannounced()
    assert {state.job_id: state.status for state in pending} == {
        completed.job_id: JobStatus.COMPLETED,
        cancelled.job_id: JobStatus.CANCELLED,
    }

    await result_store.mark_announced([completed.job_id])
    assert [state.job_id for state in await result_store.unannounced()] == [cancelled.job_id]

    await result_store.mark_announced([cancelled.job_id])
    assert await result_store.unannounced() == []


async def test_a_job_finished_moments_ago_is_left_to_the_poll_announcing_it(accepted_job, result_store):
    job = await accepted_job(total_items=1)
    await result_store.record([_processed(job.job_id, {0: S})])

    assert await result_store.unannounced(finished_s_ago=60) == []
    assert [state.job_id for state in await result_store.unannounced(finished_s_ago=0)] == [job.job_id]


async def test_unannounced_lists_the_oldest_finished_first_up_to_the_limit(accepted_job, result_store):
    jobs = [await accepted_job(total_items=1) for _ in range(3)]
    for job in jobs:
        await result_store.record([_processed(job.job_id, {0: S})])

    assert [state.job_id for state in await result_store.unannounced(limit=2)] == [j.job_id for j in jobs[:2]]


async def test_a_job_rejected_at_intake_is_unannounced_as_failed(accepted_job, job_store, result_store):
    job = await accepted_job(total_items=3)

    await job_store.mark_rejected(job.job_id, "broker unavailable")

    (state,) = await result_store.unannounced()
    assert (state.job_id, state.status, state.error) == (job.job_id, JobStatus.FAILED, "broker unavailable")


async def test_a_result_holding_a_nul_character_does_not_block_the_write(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=2)
    batch = results_message(
        tenant="acme",
        job_id=job.job_id,
        kind="bench.noop",
        batch_index=0,
        results=[
            ItemResult(index=0, status=S, input="a\x00b", output="a\x00b"),
            ItemResult(index=1, status=S, input="plain", output="plain"),
        ],
    )

    outcome = await result_store.record([batch])

    assert outcome.inserted == 2
    assert (await job_store.get("acme", job.job_id)).status is JobStatus.COMPLETED
