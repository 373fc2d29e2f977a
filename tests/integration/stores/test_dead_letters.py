"""Dead letters indexed once, redriven to the tasks topic, and a redriven item's result replacing its failure."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import pytest

from services.aggregator.dead_letters import dead_letter_from
from shared.config import KafkaSettings, OtelSettings
from shared.kafka import SendWindow, ensure_topics, make_broker
from shared.stores.dead_letters import DeadLetterFilter, DeadLetterStore, NewDeadLetter
from shared.stores.jobs import JobStore
from shared.stores.results import ResultStore
from shared.telemetry import make_tracer_provider
from shared.wire import WireBatchProcessed
from sluice.contracts.events import CancelJob, ItemResult, ItemStatus, JobStatus, TaskBatch, TaskItem
from sluice.contracts.topics import TopicNames
from tests.support.kafka import read_until
from tests.support.results import results_message

S, F, T = ItemStatus.SUCCEEDED, ItemStatus.FAILED, ItemStatus.TIMED_OUT
FAILED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def topics(topic_prefix: str) -> TopicNames:
    return TopicNames.for_prefix(topic_prefix)


@pytest.fixture
def dead_letters(db: asyncpg.Pool) -> DeadLetterStore:
    return DeadLetterStore(db)


@pytest.fixture
async def window(kafka_address: str, topic_prefix: str) -> AsyncIterator[SendWindow]:
    settings = KafkaSettings(bootstrap_servers=kafka_address, topic_prefix=topic_prefix, task_partitions=2)
    await ensure_topics(settings)
    broker = make_broker(
        settings, client_id="test-redrive", tracer_provider=make_tracer_provider(OtelSettings(), "test")
    )
    await broker.start()
    try:
        yield SendWindow(broker, 16)
    finally:
        await broker.stop()


def _letter(
    topics: TopicNames, job_id: UUID, index: int, *, offset: int, generation: int = 0, tenant: str = "acme"
) -> NewDeadLetter:
    """A dead letter as the processor writes it: a one-item TaskBatch with the failure in headers."""
    batch = TaskBatch(
        tenant=tenant,
        job_id=job_id,
        kind="bench.noop",
        batch_index=0,
        items=[TaskItem(index=index, input={"n": index}, attempt=3, first_failed_at=FAILED_AT, generation=generation)],
    )
    headers = {
        "x-sluice-reason": f"boom {index}",
        "x-sluice-error-type": "ValueError",
        "x-sluice-attempts": "3",
        "x-sluice-job-id": str(job_id),
        "x-sluice-tenant": tenant,
        "x-sluice-kind": "bench.noop",
    }
    return dead_letter_from(topics.tasks_dlq, 0, offset, batch.model_dump_json().encode(), headers, topics)


def _processed(job_id: UUID, statuses: dict[int, ItemStatus], generation: int = 0) -> WireBatchProcessed:
    results = [
        ItemResult(index=i, status=s, input={"n": i}, error=None if s is S else "boom", generation=generation)
        for i, s in statuses.items()
    ]
    return results_message(tenant="acme", job_id=job_id, kind="bench.noop", batch_index=0, results=results)


async def _rows(db: asyncpg.Pool, job_id: UUID) -> dict[int, tuple[str, int]]:
    rows = await db.fetch("SELECT item_index, status, generation FROM item_results WHERE job_id = $1", job_id)
    return {row["item_index"]: (row["status"], row["generation"]) for row in rows}


async def test_a_dead_letter_indexed_again_after_a_redelivery_is_stored_once(accepted_job, dead_letters, topics):
    job = await accepted_job(total_items=3)
    letters = [_letter(topics, job.job_id, 1, offset=7), _letter(topics, job.job_id, 2, offset=8)]

    await dead_letters.index(letters)
    await dead_letters.index(letters)

    listed = await dead_letters.list(DeadLetterFilter(tenant="acme", job_id=job.job_id))
    assert [(d.item_index, d.offset, d.reason, d.attempts, d.error_type) for d in listed] == [
        (1, 7, "boom 1", 3, "ValueError"),
        (2, 8, "boom 2", 3, "ValueError"),
    ]
    shown = await dead_letters.get(listed[0].id, "acme")
    assert shown.payload["items"][0]["index"] == 1 and shown.headers["x-sluice-reason"] == "boom 1"
    assert await dead_letters.get(listed[0].id, "someone-else") is None


async def test_an_undecodable_dead_letter_is_indexed_with_its_reason_and_no_payload(dead_letters, topics):
    letter = dead_letter_from(
        topics.results_dlq, 1, 42, b"{not json", {"x-sluice-reason": "not a results-topic event"}, topics
    )

    await dead_letters.index([letter])

    [stored] = await dead_letters.list(DeadLetterFilter(error="results-topic"))
    shown = await dead_letters.get(stored.id)
    assert (shown.topic, shown.partition, shown.offset) == (topics.results_dlq, 1, 42)
    assert (shown.payload, shown.raw_excerpt, shown.reason) == (None, "{not json", "not a results-topic event")


async def test_redrive_publishes_each_item_with_a_later_generation_then_marks_it(
    accepted_job, dead_letters, topics, window, kafka_address
):
    job = await accepted_job(total_items=3)
    await dead_letters.index([_letter(topics, job.job_id, 1, offset=1), _letter(topics, job.job_id, 2, offset=2)])

    redriven = await dead_letters.redrive(DeadLetterFilter(job_id=job.job_id), window, topics.tasks)

    records = await read_until(kafka_address, topics.tasks, lambda records: len(records) >= 2)
    batches = sorted((TaskBatch.model_validate_json(r.value) for r in records), key=lambda b: b.items[0].index)
    assert redriven == 2
    assert [(b.job_id, b.items[0].index, b.items[0].generation, b.items[0].attempt) for b in batches] == [
        (job.job_id, 1, 1, 1),
        (job.job_id, 2, 1, 1),
    ]
    assert all(b.items[0].first_failed_at is None for b in batches)
    listed = await dead_letters.list(DeadLetterFilter(job_id=job.job_id))
    assert [(d.redrive_count, d.redriven_at is not None) for d in listed] == [(1, True), (1, True)]


async def test_redrive_leaves_what_was_redriven_before_unless_asked_again(accepted_job, dead_letters, topics, window):
    job = await accepted_job(total_items=3)
    await dead_letters.index([_letter(topics, job.job_id, 1, offset=1)])
    only_this_job = DeadLetterFilter(job_id=job.job_id)
    await dead_letters.redrive(only_this_job, window, topics.tasks)

    second = await dead_letters.redrive(only_this_job, window, topics.tasks)
    again = await dead_letters.redrive(DeadLetterFilter(job_id=job.job_id, again=True), window, topics.tasks)

    assert (second, again) == (0, 1)
    [letter] = await dead_letters.list(only_this_job)
    assert letter.redrive_count == 2


async def test_a_redriven_success_replaces_the_failed_row_moves_the_counters_and_completes_the_job(
    accepted_job, result_store: ResultStore, job_store: JobStore, db
):
    job = await accepted_job(total_items=3)
    first = await result_store.record([_processed(job.job_id, {0: S, 1: F, 2: T})])
    assert first.finished[0].status is JobStatus.PARTIALLY_FAILED
    await result_store.mark_announced([job.job_id])

    redriven = await result_store.record([_processed(job.job_id, {1: S, 2: S}, generation=1)])

    stored = await job_store.get("acme", job.job_id)
    assert (stored.status, stored.succeeded, stored.failed, stored.timed_out) == (JobStatus.COMPLETED, 3, 0, 0)
    assert stored.finished_at >= job.created_at and stored.error is None
    assert (redriven.replaced, [s.status for s in redriven.finished]) == (2, [JobStatus.COMPLETED])
    assert await _rows(db, job.job_id) == {0: ("succeeded", 0), 1: ("succeeded", 1), 2: ("succeeded", 1)}
    assert [state.status for state in await result_store.unannounced()] == [JobStatus.COMPLETED]


async def test_a_failed_job_whose_one_failure_is_redriven_to_success_ends_completed(
    accepted_job, result_store, job_store
):
    job = await accepted_job(total_items=1)
    await result_store.record([_processed(job.job_id, {0: F})])
    assert (await job_store.get("acme", job.job_id)).status is JobStatus.FAILED

    await result_store.record([_processed(job.job_id, {0: S}, generation=1)])

    stored = await job_store.get("acme", job.job_id)
    assert (stored.status, stored.succeeded, stored.failed, stored.error) == (JobStatus.COMPLETED, 1, 0, None)


async def test_a_result_of_the_same_generation_leaves_a_failed_row_and_the_counters_alone(
    accepted_job, result_store, job_store, db
):
    job = await accepted_job(total_items=2)
    await result_store.record([_processed(job.job_id, {0: S, 1: F})])

    again = await result_store.record([_processed(job.job_id, {1: S})])

    stored = await job_store.get("acme", job.job_id)
    assert (again.inserted, again.duplicates, again.finished) == (0, 1, [])
    assert (stored.status, stored.succeeded, stored.failed) == (JobStatus.PARTIALLY_FAILED, 1, 1)
    assert (await _rows(db, job.job_id))[1] == ("failed", 0)


async def test_a_succeeded_row_is_never_replaced_even_by_a_later_generation(accepted_job, result_store, job_store, db):
    job = await accepted_job(total_items=2)
    await result_store.record([_processed(job.job_id, {0: S, 1: S})])

    later = await result_store.record([_processed(job.job_id, {0: F, 1: S}, generation=5)])

    stored = await job_store.get("acme", job.job_id)
    assert (later.inserted, later.replaced) == (0, 0)
    assert (stored.status, stored.succeeded, stored.failed) == (JobStatus.COMPLETED, 2, 0)
    assert await _rows(db, job.job_id) == {0: ("succeeded", 0), 1: ("succeeded", 0)}


async def test_a_cancelled_job_stays_cancelled_when_a_redriven_item_succeeds(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=3)
    await result_store.record([_processed(job.job_id, {0: F})])
    await result_store.record([], [CancelJob(tenant="acme", job_id=job.job_id)])

    await result_store.record([_processed(job.job_id, {0: S}, generation=1)])

    stored = await job_store.get("acme", job.job_id)
    assert (stored.status, stored.succeeded, stored.failed) == (JobStatus.CANCELLED, 1, 0)


async def test_a_timed_out_item_counts_as_timed_out_not_failed(accepted_job, result_store, job_store):
    job = await accepted_job(total_items=2)

    await result_store.record([_processed(job.job_id, {0: S, 1: T})])

    stored = await job_store.get("acme", job.job_id)
    assert (stored.status, stored.failed, stored.timed_out) == (JobStatus.PARTIALLY_FAILED, 0, 1)
    assert stored.counts.done == 2


async def test_a_job_with_another_tenants_dead_letters_lists_none_of_them(accepted_job, dead_letters, topics):
    job = await accepted_job(total_items=2, tenant="other")
    await dead_letters.index([_letter(topics, job.job_id, 0, offset=3, tenant="other")])

    assert await dead_letters.list(DeadLetterFilter(tenant="acme", job_id=job.job_id)) == []
    assert len(await dead_letters.list(DeadLetterFilter(tenant="other", job_id=job.job_id))) == 1


async def test_keyset_pages_of_dead_letters_cover_each_once(dead_letters, topics):
    job_id = uuid4()
    await dead_letters.index([_letter(topics, job_id, i, offset=i) for i in range(5)])

    first = await dead_letters.list(DeadLetterFilter(job_id=job_id), limit=3)
    second = await dead_letters.list(DeadLetterFilter(job_id=job_id), limit=3, after_id=first[-1].id)

    assert [d.item_index for d in first + second] == [0, 1, 2, 3, 4]


async def test_a_redriven_success_replacing_a_timed_out_row_counted_as_failed_leaves_no_counter_negative(
    accepted_job, result_store, job_store, db
):
    job = await accepted_job(total_items=2)
    await result_store.record([_processed(job.job_id, {0: S})])
    # As the scheduler's deadline sweep ends a job: a timed_out row, counted in the failed counter.
    await db.execute("INSERT INTO item_results (job_id, item_index, status) VALUES ($1, 1, 'timed_out')", job.job_id)
    await db.execute(
        "UPDATE jobs SET failed = failed + 1, status = 'partially_failed', finished_at = now() WHERE job_id = $1",
        job.job_id,
    )

    await result_store.record([_processed(job.job_id, {1: S}, generation=1)])

    stored = await job_store.get("acme", job.job_id)
    assert (stored.status, stored.succeeded, stored.failed, stored.timed_out) == (JobStatus.COMPLETED, 2, 0, 0)
