"""What the dead-letter indexer takes from a message, and what a redrive publishes."""

from datetime import UTC, datetime
from uuid import uuid4

from services.aggregator.dead_letters import dead_letter_from
from shared.stores.dead_letters import redriven_batch
from sluice.contracts.events import BatchProcessed, ItemResult, ItemStatus, TaskBatch, TaskItem
from sluice.contracts.topics import TopicNames

TOPICS = TopicNames.for_prefix("t")
FAILED_AT = datetime(2026, 1, 2, tzinfo=UTC)


def _batch(generation: int = 0) -> TaskBatch:
    item = TaskItem(index=4, input="x", attempt=5, first_failed_at=FAILED_AT, generation=generation)
    return TaskBatch(tenant="acme", job_id=uuid4(), kind="bench.noop", batch_index=2, items=[item])


def test_a_task_dead_letter_takes_its_failure_from_the_headers_and_its_item_from_the_payload():
    batch = _batch(generation=2)
    headers = {
        "x-sluice-reason": "HTTP 404",
        "x-sluice-error-type": "HTTPStatusError",
        "x-sluice-attempts": "5",
        "x-sluice-last-failure-at": "2026-01-02T00:01:00+00:00",
        "x-sluice-trace-id": "abc",
    }

    letter = dead_letter_from(TOPICS.tasks_dlq, 1, 9, batch.model_dump_json().encode(), headers, TOPICS)

    assert (letter.job_id, letter.tenant, letter.kind) == (batch.job_id, "acme", "bench.noop")
    assert (letter.item_index, letter.generation, letter.attempts) == (4, 2, 5)
    assert (letter.reason, letter.error_type, letter.trace_id) == ("HTTP 404", "HTTPStatusError", "abc")
    assert letter.first_failure_at == FAILED_AT
    assert letter.last_failure_at == datetime(2026, 1, 2, 0, 1, tzinfo=UTC)
    assert letter.payload["items"][0]["index"] == 4 and letter.raw_excerpt is None


def test_an_undecodable_dead_letter_keeps_the_reason_and_an_excerpt_without_a_payload():
    letter = dead_letter_from(TOPICS.tasks_dlq, 0, 1, b"\x00garbage", {}, TOPICS)

    assert letter.payload is None and letter.job_id is None
    assert letter.reason.startswith("not a TaskBatch")
    assert letter.raw_excerpt == "\ufffdgarbage"


def test_a_results_dead_letter_of_an_unknown_job_is_indexed_under_that_job():
    event = BatchProcessed(
        tenant="acme", job_id=uuid4(), kind="k", batch_index=0, results=[ItemResult(index=0, status=ItemStatus.FAILED)]
    )
    headers = {"x-sluice-reason": "unknown job", "x-sluice-error-type": "UnknownJob"}

    letter = dead_letter_from(TOPICS.results_dlq, 0, 3, event.model_dump_json().encode(), headers, TOPICS)

    assert (letter.job_id, letter.tenant, letter.error_type, letter.item_index) == (
        event.job_id,
        "acme",
        "UnknownJob",
        None,
    )
    assert letter.payload["type"] == "batch.processed"


def test_a_redriven_item_is_a_later_generation_on_its_first_attempt_with_no_failure_time():
    batch = _batch(generation=1)

    first = redriven_batch(batch.model_dump(mode="json"), redrive_count=0)
    again = redriven_batch(batch.model_dump(mode="json"), redrive_count=1)

    assert [(i.index, i.generation, i.attempt, i.first_failed_at) for i in first.items] == [(4, 2, 1, None)]
    assert again.items[0].generation == 3
    assert (first.job_id, first.batch_index, first.kind) == (batch.job_id, 2, "bench.noop")
    assert first.event_id != batch.event_id
