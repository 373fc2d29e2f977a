from uuid import uuid4

from shared.stores.jobs import AlreadyExists, Created
from sluice.contracts.events import ItemResult, ItemStatus, JobStatus, Priority
from tests.support.results import results_message


async def test_a_new_job_is_created_queued_with_what_was_asked(job_request, job_store):
    job = job_request(tenant="acme", total_items=120, idempotency_key="key-1", batch_size=50)

    created = await job_store.create(job)

    assert isinstance(created, Created)
    record = created.job
    assert (record.job_id, record.tenant, record.kind, record.priority) == (
        job.job_id,
        "acme",
        "bench.noop",
        Priority.NORMAL,
    )
    assert (record.options, record.source, record.idempotency_key) == ({"rounds": 2}, "rest", "key-1")
    assert (record.total_items, record.total_batches) == (120, 3)
    assert record.status is JobStatus.QUEUED
    assert (record.succeeded, record.failed, record.cancelled) == (0, 0, 0)
    assert not record.accepted
    assert await job_store.get("acme", job.job_id) == record


async def test_mark_accepted_stamps_the_job_once(job_request, job_store):
    created = await job_store.create(job_request())
    await job_store.mark_accepted(created.job.job_id)
    first = await job_store.get("acme", created.job.job_id)

    await job_store.mark_accepted(created.job.job_id)

    again = await job_store.get("acme", created.job.job_id)
    assert first.accepted and first.accepted_at is not None
    assert again.accepted_at == first.accepted_at


async def test_the_same_idempotency_key_from_the_same_tenant_returns_the_first_job(job_request, job_store):
    first = await job_store.create(job_request(idempotency_key="order-42"))

    retry = await job_store.create(job_request(idempotency_key="order-42"))

    assert isinstance(first, Created)
    assert isinstance(retry, AlreadyExists)
    assert retry.job.job_id == first.job.job_id


async def test_the_same_job_id_returns_the_existing_job_even_with_another_key(job_request, job_store):
    job_id = uuid4()
    first = await job_store.create(job_request(job_id=job_id, idempotency_key="a"))

    again = await job_store.create(job_request(job_id=job_id, idempotency_key="b"))
    without_key = await job_store.create(job_request(job_id=job_id))

    assert isinstance(again, AlreadyExists) and isinstance(without_key, AlreadyExists)
    assert again.job == first.job == without_key.job


async def test_a_key_clashing_with_one_job_and_an_id_with_another_returns_the_one_with_that_id(job_request, job_store):
    keyed = await job_store.create(job_request(idempotency_key="k"))
    other = await job_store.create(job_request(idempotency_key="other"))

    clash = await job_store.create(job_request(job_id=other.job.job_id, idempotency_key="k"))

    assert isinstance(clash, AlreadyExists)
    assert clash.job.job_id == other.job.job_id != keyed.job.job_id


async def test_the_same_key_from_another_tenant_is_a_different_job(job_request, job_store):
    ours = await job_store.create(job_request(tenant="acme", idempotency_key="shared-key"))

    theirs = await job_store.create(job_request(tenant="globex", idempotency_key="shared-key"))

    assert isinstance(ours, Created) and isinstance(theirs, Created)
    assert ours.job.job_id != theirs.job.job_id


async def test_jobs_without_a_key_never_collide(job_request, job_store):
    outcomes = [await job_store.create(job_request()) for _ in range(3)]
    assert all(isinstance(outcome, Created) for outcome in outcomes)


async def test_a_rejected_job_ends_failed_and_frees_its_key_for_a_retry(job_request, job_store):
    first = await job_store.create(job_request(idempotency_key="retry-me"))

    await job_store.mark_rejected(first.job.job_id, "broker unavailable")
    retry = await job_store.create(job_request(idempotency_key="retry-me"))

    assert isinstance(retry, Created)
    assert retry.job.job_id != first.job.job_id
    rejected = await job_store.get("acme", first.job.job_id)
    assert (rejected.status, rejected.error, rejected.idempotency_key) == (
        JobStatus.FAILED,
        "broker unavailable",
        None,
    )
    assert rejected.finished_at is not None
    assert isinstance(await job_store.create(job_request(idempotency_key="retry-me")), AlreadyExists)


async def test_rejecting_a_job_that_already_finished_changes_nothing(job_request, job_store, result_store):
    created = await job_store.create(job_request(total_items=1, idempotency_key="done"))
    await job_store.mark_accepted(created.job.job_id)
    await result_store.record(
        [
            results_message(
                tenant="acme",
                job_id=created.job.job_id,
                kind="bench.noop",
                batch_index=0,
                results=[ItemResult(index=0, status=ItemStatus.SUCCEEDED)],
            )
        ]
    )

    await job_store.mark_rejected(created.job.job_id, "too late")

    stored = await job_store.get("acme", created.job.job_id)
    assert (stored.status, stored.error, stored.idempotency_key) == (JobStatus.COMPLETED, None, "done")


async def test_a_job_is_invisible_to_another_tenant(accepted_job, job_store):
    job = await accepted_job(tenant="acme")

    assert await job_store.get("globex", job.job_id) is None
    assert await job_store.request_cancel("globex", job.job_id) is None
    assert (await job_store.get("acme", job.job_id)).cancel_requested_at is None


async def test_an_unknown_job_id_is_none(job_store):
    assert await job_store.get("acme", uuid4()) is None


async def test_request_cancel_stamps_the_time_once_and_leaves_the_status_to_the_aggregator(accepted_job, job_store):
    job = await accepted_job()

    first = await job_store.request_cancel("acme", job.job_id)
    again = await job_store.request_cancel("acme", job.job_id)

    assert first.cancel_requested_at is not None
    assert again.cancel_requested_at == first.cancel_requested_at
    assert again.status is JobStatus.QUEUED


async def _fill(result_store, job_id, indexes):
    statuses = (ItemStatus.SUCCEEDED, ItemStatus.FAILED, ItemStatus.CANCELLED)
    results = [ItemResult(index=i, status=statuses[i % 3], input={"i": i}, output={"o": i}) for i in indexes]
    for start in range(0, len(results), 1000):
        await result_store.record(
            [
                results_message(
                    tenant="acme",
                    job_id=job_id,
                    kind="bench.noop",
                    batch_index=start // 1000,
                    results=results[start : start + 1000],
                )
            ]
        )


async def test_paging_by_the_last_index_returns_every_result_exactly_once(accepted_job, job_store, result_store):
    indexes = list(range(0, 250, 2)) + [999]  # gaps, so pages cannot be computed by offset
    job = await accepted_job(total_items=1000)
    await _fill(result_store, job.job_id, reversed(indexes))

    seen, after, pages = [], -1, 0
    while page := await job_store.results_page(job.job_id, after, 7):
        assert len(page) <= 7
        seen += [row["item_index"] for row in page]
        after = page[-1]["item_index"]
        pages += 1

    assert seen == indexes
    assert pages == -(-len(indexes) // 7)


async def test_a_page_holds_the_stored_result(accepted_job, job_store, result_store):
    job = await accepted_job(total_items=5)
    await _fill(result_store, job.job_id, [3])

    (row,) = await job_store.results_page(job.job_id, -1, 10)

    assert (row["item_index"], row["status"], row["input"], row["output"]) == (
        3,
        "succeeded",
        {"i": 3},
        {"o": 3},
    )
    assert row["recorded_at"] is not None


async def test_pages_never_mix_in_another_jobs_results(accepted_job, job_store, result_store):
    ours, theirs = await accepted_job(total_items=5), await accepted_job(total_items=5)
    await _fill(result_store, ours.job_id, [0, 2])
    await _fill(result_store, theirs.job_id, [1, 3])

    assert [row["item_index"] for row in await job_store.results_page(ours.job_id, -1, 100)] == [0, 2]


async def test_iterating_results_yields_every_row_in_order_in_chunks(accepted_job, job_store, result_store):
    job = await accepted_job(total_items=2500)
    await _fill(result_store, job.job_id, range(2500))

    chunks = [chunk async for chunk in job_store.iter_results(job.job_id, chunk=1000)]

    assert [len(chunk) for chunk in chunks] == [1000, 1000, 500]
    assert [row["item_index"] for chunk in chunks for row in chunk] == list(range(2500))


async def test_iterating_a_job_with_an_exact_multiple_of_the_chunk_ends_cleanly(accepted_job, job_store, result_store):
    job = await accepted_job(total_items=20)
    await _fill(result_store, job.job_id, range(20))

    chunks = [chunk async for chunk in job_store.iter_results(job.job_id, chunk=10)]

    assert [len(chunk) for chunk in chunks] == [10, 10]


async def test_iterating_a_job_without_results_yields_nothing(accepted_job, job_store):
    job = await accepted_job()
    assert [chunk async for chunk in job_store.iter_results(job.job_id)] == []
