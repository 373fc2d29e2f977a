import json
from uuid import uuid4

import pytest

from services.processor.logic import batch_result, cancelled, decode_task_batch, failed, succeeded
from shared.errors import ItemFailed
from shared.events import CancelJob, ItemStatus, TaskBatch, TaskItem


def _batch() -> TaskBatch:
    return TaskBatch(
        tenant="acme",
        job_id=uuid4(),
        kind="k",
        batch_index=4,
        items=[TaskItem(index=8, input={"u": 1}), TaskItem(index=9, input="two")],
    )


def test_a_task_batch_decodes_to_itself():
    batch = _batch()
    assert decode_task_batch(batch.model_dump_json().encode()) == batch


@pytest.mark.parametrize("raw", [None, b""])
def test_an_empty_task_message_is_refused_as_empty(raw):
    with pytest.raises(ValueError, match="^empty message$"):
        decode_task_batch(raw)


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"{", b"[]", b"null"])
def test_garbage_is_refused_as_not_a_task_batch(raw):
    with pytest.raises(ValueError, match="^not a TaskBatch: "):
        decode_task_batch(raw)


def test_another_event_type_is_refused_as_not_a_task_batch():
    with pytest.raises(ValueError, match="^not a TaskBatch: "):
        decode_task_batch(CancelJob(tenant="acme", job_id=uuid4()).model_dump_json().encode())


def test_a_batch_with_no_items_is_refused_naming_the_items_field():
    body = json.loads(_batch().model_dump_json())
    body["items"] = []
    with pytest.raises(ValueError, match="items"):
        decode_task_batch(json.dumps(body).encode())


def test_a_timeout_is_reported_as_timed_out():
    result = failed(TaskItem(index=0, input=1), TimeoutError(), 12.5)
    assert (result.status, result.error, result.error_type, result.duration_ms) == (
        ItemStatus.FAILED,
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
