from uuid import uuid4

from services.processor.logic import batch_result, cancelled, failed, succeeded
from shared.errors import ItemFailed
from shared.wire import wire_result, wire_task_batch
from sluice.contracts.events import ItemStatus, TaskBatch, TaskItem


def _batch() -> TaskBatch:
    return TaskBatch(
        tenant="acme",
        job_id=uuid4(),
        kind="k",
        batch_index=4,
        items=[TaskItem(index=8, input={"u": 1}), TaskItem(index=9, input="two")],
    )


def test_a_timeout_is_reported_as_timed_out():
    result = failed(TaskItem(index=0, input=1), TimeoutError(), 12.5)
    assert (result.status, result.error, result.error_type, result.duration_ms) == (
        ItemStatus.TIMED_OUT,
        "timed out",
        "TimeoutError",
        12.5,
    )


def test_an_item_failure_reports_its_reason_not_its_repr():
    result = failed(TaskItem(index=0, input=1), ItemFailed("HTTP 404"), 1.0)
    assert (result.error, result.error_type) == ("HTTP 404", "ItemFailed")


def test_succeeded_and_cancelled_results_keep_the_items_input():
    item = TaskItem(index=3, input={"u": 1})
    ok = succeeded(item, {"title": "t"}, 2.0)
    assert (ok.index, ok.status, ok.input, ok.output, ok.attempts) == (
        3,
        ItemStatus.SUCCEEDED,
        {"u": 1},
        {"title": "t"},
        1,
    )
    stopped = cancelled(item)
    assert (stopped.index, stopped.status, stopped.input, stopped.attempts) == (
        3,
        ItemStatus.CANCELLED,
        {"u": 1},
        0,
    )


def test_a_batch_result_answers_for_the_batch_it_ran():
    batch = _batch()
    results = [cancelled(item) for item in batch.items]
    processed = batch_result(batch, results)
    assert (processed.tenant, processed.job_id, processed.kind, processed.batch_index) == (
        batch.tenant,
        batch.job_id,
        batch.kind,
        batch.batch_index,
    )
    assert processed.results == results


def test_retries_are_grouped_into_one_batch_per_tier_keeping_the_batch_envelope():
    from services.processor.logic import BatchOutcome, RetryScheduled

    batch = _batch()
    first, second = (item.model_copy(update={"attempt": 2}) for item in batch.items)
    outcome = BatchOutcome(wire_task_batch(batch), retries=[RetryScheduled(second, 8), RetryScheduled(first, 2)])
    grouped = outcome.retry_batches()
    assert [(tier, [i.index for i in b.items]) for tier, b in grouped] == [(2, [8]), (8, [9])]
    assert all((b.job_id, b.batch_index, b.kind) == (batch.job_id, 4, "k") for _, b in grouped)
    assert outcome.processed is None


def test_a_results_message_lists_the_items_in_index_order_whatever_order_they_finished_in():
    from services.processor.logic import BatchOutcome

    batch = _batch()
    results = [wire_result(succeeded(item, None, 1.0)) for item in reversed(batch.items)]
    outcome = BatchOutcome(wire_task_batch(batch), results=results)
    assert [r.index for r in outcome.processed.results] == [8, 9]


def test_results_carry_the_attempt_and_generation_of_the_item():
    item = TaskItem(index=1, input=1, attempt=3, generation=2)
    assert (succeeded(item, 1, 0.0).attempts, succeeded(item, 1, 0.0).generation) == (3, 2)
    assert (failed(item, ValueError("x"), 0.0).attempts, failed(item, ValueError("x"), 0.0).generation) == (3, 2)
