import json
from datetime import datetime
from uuid import uuid4

import pytest
from pydantic import ValidationError

from sluice.contracts.events import (
    BatchProcessed,
    CancelJob,
    ItemResult,
    ItemStatus,
    JobCancelled,
    JobCompleted,
    JobCounts,
    JobFailed,
    JobProgressed,
    JobRequested,
    JobStatus,
    Priority,
    TaskBatch,
    TaskItem,
    any_event,
    job_event,
    results_topic_message,
)

JOB = uuid4()
COUNTS = JobCounts(total=10, succeeded=6, failed=3, cancelled=1)

EVENTS = {
    "job.requested": JobRequested(
        tenant="acme",
        job_id=JOB,
        kind="web.page",
        items=["https://a.example", {"url": "https://b.example"}],
        options={"depth": 1},
        priority=Priority.HIGH,
        callback_url="https://hooks.example/x",
    ),
    "task.batch": TaskBatch(
        tenant="acme",
        job_id=JOB,
        kind="web.page",
        batch_index=2,
        options={"depth": 1},
        priority=Priority.BULK,
        items=[TaskItem(index=100, input={"url": "https://a.example"}), TaskItem(index=101, input=None)],
    ),
    "batch.processed": BatchProcessed(
        tenant="acme",
        job_id=JOB,
        kind="web.page",
        batch_index=2,
        results=[
            ItemResult(
                index=100,
                status=ItemStatus.SUCCEEDED,
                input="a",
                output={"title": "Ünïcødé"},
                duration_ms=3.5,
            ),
            ItemResult(index=101, status=ItemStatus.FAILED, input="b", error="HTTP 500", error_type="ItemFailed"),
            ItemResult(index=102, status=ItemStatus.CANCELLED, attempts=0),
        ],
    ),
    "job.cancel": CancelJob(tenant="acme", job_id=JOB, reason="owner asked"),
    "job.progress": JobProgressed(tenant="acme", job_id=JOB, counts=COUNTS, percent=100.0),
    "job.completed": JobCompleted(tenant="acme", job_id=JOB, status=JobStatus.PARTIALLY_FAILED, counts=COUNTS),
    "job.failed": JobFailed(tenant="acme", job_id=JOB, counts=COUNTS, reason="all 10 items failed"),
    "job.cancelled": JobCancelled(tenant="acme", job_id=JOB, counts=COUNTS, reason="cancelled by request"),
}
RESULTS_TOPIC = {"batch.processed", "job.cancel"}
JOB_EVENTS = {"job.progress", "job.completed", "job.failed", "job.cancelled"}


@pytest.mark.parametrize("type_", sorted(EVENTS))
def test_every_event_survives_a_json_round_trip_unchanged(type_):
    event = EVENTS[type_]
    again = type(event).model_validate_json(event.model_dump_json())
    assert again == event
    assert again.type == type_


@pytest.mark.parametrize("type_", sorted(EVENTS))
def test_the_any_event_union_picks_the_type_named_on_the_wire(type_):
    event = EVENTS[type_]
    decoded = any_event.validate_json(event.model_dump_json())
    assert type(decoded) is type(event)
    assert decoded == event


@pytest.mark.parametrize("type_", sorted(RESULTS_TOPIC))
def test_the_results_topic_union_picks_batches_and_cancels(type_):
    event = EVENTS[type_]
    assert type(results_topic_message.validate_json(event.model_dump_json())) is type(event)


@pytest.mark.parametrize("type_", sorted(set(EVENTS) - RESULTS_TOPIC))
def test_the_results_topic_union_refuses_every_other_event(type_):
    with pytest.raises(ValidationError):
        results_topic_message.validate_json(EVENTS[type_].model_dump_json())


@pytest.mark.parametrize("type_", sorted(JOB_EVENTS))
def test_the_job_event_union_picks_each_job_event(type_):
    event = EVENTS[type_]
    assert type(job_event.validate_json(event.model_dump_json())) is type(event)


@pytest.mark.parametrize("type_", sorted(set(EVENTS) - JOB_EVENTS))
def test_the_job_event_union_refuses_every_other_event(type_):
    with pytest.raises(ValidationError):
        job_event.validate_json(EVENTS[type_].model_dump_json())


@pytest.mark.parametrize("type_", sorted(EVENTS))
def test_an_unexpected_field_is_rejected(type_):
    body = json.loads(EVENTS[type_].model_dump_json())
    body["surprise"] = True
    with pytest.raises(ValidationError, match="surprise"):
        any_event.validate_python(body)


def test_an_unexpected_field_inside_a_nested_item_is_rejected():
    body = json.loads(EVENTS["batch.processed"].model_dump_json())
    body["results"][0]["retries"] = 2
    with pytest.raises(ValidationError, match="retries"):
        any_event.validate_python(body)


@pytest.mark.parametrize("type_", sorted(EVENTS))
def test_events_are_frozen(type_):
    with pytest.raises(ValidationError):
        EVENTS[type_].tenant = "someone-else"


def test_an_unknown_schema_version_is_rejected():
    body = json.loads(EVENTS["job.cancel"].model_dump_json())
    body["schema_version"] = 2
    with pytest.raises(ValidationError, match="schema_version"):
        any_event.validate_python(body)


def test_an_unknown_event_type_is_rejected():
    body = json.loads(EVENTS["job.cancel"].model_dump_json())
    body["type"] = "job.paused"
    with pytest.raises(ValidationError):
        any_event.validate_python(body)


def test_a_naive_timestamp_is_rejected():
    with pytest.raises(ValidationError, match="occurred_at"):
        CancelJob(tenant="acme", job_id=JOB, occurred_at=datetime(2025, 1, 1))


def test_each_event_gets_its_own_id_and_an_aware_timestamp():
    a, b = CancelJob(tenant="acme", job_id=JOB), CancelJob(tenant="acme", job_id=JOB)
    assert a.event_id != b.event_id
    assert a.occurred_at.tzinfo is not None


@pytest.mark.parametrize("tenant", ["", "x" * 201])
def test_a_tenant_must_be_between_one_and_two_hundred_characters(tenant):
    with pytest.raises(ValidationError, match="tenant"):
        CancelJob(tenant=tenant, job_id=JOB)


def test_a_job_request_needs_at_least_one_item():
    with pytest.raises(ValidationError, match="items"):
        JobRequested(tenant="acme", job_id=JOB, kind="web.page", items=[])


def test_a_task_batch_holds_between_one_and_a_thousand_items():
    def batch(n):
        return TaskBatch(
            tenant="a",
            job_id=JOB,
            kind="k",
            batch_index=0,
            items=[TaskItem(index=i, input=i) for i in range(n)],
        )

    assert len(batch(1000).items) == 1000
    for n in (0, 1001):
        with pytest.raises(ValidationError, match="items"):
            batch(n)


@pytest.mark.parametrize("field", ["index", "attempts", "duration_ms"])
def test_item_result_numbers_cannot_be_negative(field):
    with pytest.raises(ValidationError, match=field):
        ItemResult(**{"index": 0, "status": ItemStatus.SUCCEEDED, field: -1})


def test_a_completed_event_accepts_only_completed_or_partially_failed():
    for status in (JobStatus.COMPLETED, JobStatus.PARTIALLY_FAILED):
        assert JobCompleted(tenant="a", job_id=JOB, status=status, counts=COUNTS).status is status
    for status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.RUNNING):
        with pytest.raises(ValidationError, match="status"):
            JobCompleted(tenant="a", job_id=JOB, status=status, counts=COUNTS)


@pytest.mark.parametrize("percent", [-0.1, 100.1])
def test_progress_percent_stays_within_zero_and_one_hundred(percent):
    with pytest.raises(ValidationError, match="percent"):
        JobProgressed(tenant="a", job_id=JOB, counts=COUNTS, percent=percent)


def test_counts_report_done_and_pending():
    assert (COUNTS.done, COUNTS.pending) == (10, 0)
    assert (
        JobCounts(total=10, succeeded=2, failed=1).done,
        JobCounts(total=10, succeeded=2, failed=1).pending,
    ) == (3, 7)
    assert JobCounts(total=1, succeeded=3).pending == 0


@pytest.mark.parametrize(
    ("status", "terminal"),
    [
        ("queued", False),
        ("running", False),
        ("completed", True),
        ("partially_failed", True),
        ("failed", True),
        ("cancelled", True),
    ],
)
def test_only_queued_and_running_jobs_are_unfinished(status, terminal):
    assert JobStatus(status).is_terminal is terminal
