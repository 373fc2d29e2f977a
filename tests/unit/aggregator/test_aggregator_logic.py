import json
from uuid import uuid4

import pytest

from services.aggregator.logic import backoff_delay, decode_results_message, lifecycle_event, progress_event
from shared.events import (
    BatchProcessed,
    CancelJob,
    ItemResult,
    ItemStatus,
    JobCancelled,
    JobCompleted,
    JobCounts,
    JobFailed,
    JobStatus,
    TaskBatch,
    TaskItem,
)
from shared.stores.results import JobState


def _state(status: JobStatus, total=10, succeeded=0, failed=0, cancelled=0, error=None) -> JobState:
    counts = JobCounts(total=total, succeeded=succeeded, failed=failed, cancelled=cancelled)
    return JobState(uuid4(), "acme", status, counts, error)


def test_a_batch_processed_message_decodes_to_its_event():
    sent = BatchProcessed(
        tenant="acme",
        job_id=uuid4(),
        kind="k",
        batch_index=3,
        results=[ItemResult(index=0, status=ItemStatus.SUCCEEDED, output={"ok": True})],
    )
    decoded = decode_results_message(sent.model_dump_json().encode())
    assert isinstance(decoded, BatchProcessed)
    assert decoded == sent


def test_a_cancel_command_decodes_to_its_command():
    sent = CancelJob(tenant="acme", job_id=uuid4(), reason="owner asked")
    decoded = decode_results_message(sent.model_dump_json().encode())
    assert isinstance(decoded, CancelJob)
    assert decoded == sent


@pytest.mark.parametrize("raw", [None, b""])
def test_an_empty_message_is_refused_as_empty(raw):
    with pytest.raises(ValueError, match="^empty message$"):
        decode_results_message(raw)


@pytest.mark.parametrize("raw", [b"\x00\x01garbage", b"{not json", b"[]", b"42", b'"text"'])
def test_garbage_is_refused_as_not_a_results_topic_event(raw):
    with pytest.raises(ValueError, match="^not a results-topic event: "):
        decode_results_message(raw)


def test_an_event_meant_for_another_topic_is_refused_naming_the_type_field():
    batch = TaskBatch(tenant="acme", job_id=uuid4(), kind="k", batch_index=0, items=[TaskItem(index=0, input=1)])
    with pytest.raises(ValueError, match="not a results-topic event") as caught:
        decode_results_message(batch.model_dump_json().encode())
    assert "'task.batch'" in str(caught.value)
    assert "'batch.processed', 'job.cancel'" in str(caught.value)


def test_a_results_message_with_an_unexpected_field_is_refused_naming_it():
    body = json.loads(CancelJob(tenant="acme", job_id=uuid4()).model_dump_json())
    body["extra"] = 1
    with pytest.raises(ValueError, match="extra"):
        decode_results_message(json.dumps(body).encode())


def test_a_results_message_missing_its_job_is_refused_naming_the_field():
    body = json.loads(CancelJob(tenant="acme", job_id=uuid4()).model_dump_json())
    del body["job_id"]
    with pytest.raises(ValueError, match="job_id"):
        decode_results_message(json.dumps(body).encode())


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.PARTIALLY_FAILED])
def test_a_job_with_every_result_in_is_announced_completed_with_its_status(status):
    state = _state(status, succeeded=7, failed=3 if status is JobStatus.PARTIALLY_FAILED else 0)
    event = lifecycle_event(state)
    assert isinstance(event, JobCompleted)
    assert event.status is status
    assert (event.job_id, event.tenant, event.counts) == (state.job_id, state.tenant, state.counts)


def test_a_failed_job_is_announced_failed_with_its_error():
    state = _state(JobStatus.FAILED, failed=10, error="all 10 items failed")
    event = lifecycle_event(state)
    assert isinstance(event, JobFailed)
    assert event.reason == "all 10 items failed"
    assert event.counts == state.counts


def test_a_failed_job_without_an_error_still_gives_a_reason():
    event = lifecycle_event(_state(JobStatus.FAILED, failed=10))
    assert isinstance(event, JobFailed)
    assert event.reason == "failed"


def test_a_cancelled_job_is_announced_cancelled_with_its_reason():
    state = _state(JobStatus.CANCELLED, succeeded=2, error="cancelled by request")
    event = lifecycle_event(state)
    assert isinstance(event, JobCancelled)
    assert event.reason == "cancelled by request"
    assert event.counts.succeeded == 2


def test_a_cancelled_job_without_an_error_still_gives_a_reason():
    event = lifecycle_event(_state(JobStatus.CANCELLED))
    assert isinstance(event, JobCancelled)
    assert event.reason == "cancelled"


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING])
def test_a_job_that_has_not_finished_has_no_lifecycle_event(status):
    state = _state(status)
    with pytest.raises(ValueError, match="not terminal") as caught:
        lifecycle_event(state)
    assert str(state.job_id) in str(caught.value)


def test_progress_reports_counts_and_percent_done():
    state = _state(JobStatus.RUNNING, total=8, succeeded=2, failed=1, cancelled=0)
    event = progress_event(state)
    assert event.percent == 37.5
    assert event.counts == state.counts
    assert (event.job_id, event.tenant) == (state.job_id, state.tenant)


def test_progress_of_an_empty_job_is_one_hundred_percent():
    assert progress_event(_state(JobStatus.RUNNING, total=0)).percent == 100.0


def test_progress_never_exceeds_one_hundred_percent():
    assert progress_event(_state(JobStatus.RUNNING, total=3, succeeded=4)).percent == 100.0


@pytest.mark.parametrize(("attempt", "delay"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (50, 5.0)])
def test_backoff_doubles_from_the_base_up_to_the_cap(attempt, delay):
    assert backoff_delay(attempt) == delay


def test_backoff_honours_a_custom_base_and_cap():
    assert [backoff_delay(n, base_s=0.1, cap_s=0.3) for n in (1, 2, 3)] == [0.1, 0.2, 0.3]
