from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from services.intake.logic import status_view
from shared.records import JobRecord
from sluice.contracts.events import JobStatus, Priority

CREATED = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def _job(status: JobStatus, total: int, succeeded: int = 0, failed: int = 0, cancelled: int = 0, **extra) -> JobRecord:
    fields = dict(
        job_id=uuid4(),
        tenant="acme",
        kind="bench.noop",
        priority=Priority.HIGH,
        options={},
        callback_url=None,
        source="rest",
        idempotency_key=None,
        request_fingerprint=None,
        status=status,
        total_items=total,
        total_batches=1,
        succeeded=succeeded,
        failed=failed,
        cancelled=cancelled,
        error=None,
        created_at=CREATED,
        accepted_at=CREATED,
        started_at=None,
        finished_at=None,
        cancel_requested_at=None,
    )
    fields.update(extra)
    return JobRecord(**fields)


def test_a_queued_job_shows_nothing_done_everything_pending_and_no_eta():
    view = status_view(_job(JobStatus.QUEUED, 40), CREATED + timedelta(seconds=5))
    assert view["status"] == "queued"
    assert view["counts"] == {"total": 40, "succeeded": 0, "failed": 0, "cancelled": 0, "timed_out": 0, "pending": 40}
    assert view["percent"] == 0.0
    assert view["eta_seconds"] is None
    assert view["started_at"] is None and view["finished_at"] is None


def test_a_running_job_projects_its_eta_from_the_rate_so_far():
    started = CREATED + timedelta(seconds=1)
    job = _job(JobStatus.RUNNING, 100, succeeded=20, failed=5, started_at=started)
    view = status_view(job, started + timedelta(seconds=10))
    # 25 done in 10 s is 2.5 items/s, so 75 pending take 30 s.
    assert view["eta_seconds"] == 30.0
    assert view["percent"] == 25.0
    assert view["counts"]["pending"] == 75
    assert view["started_at"] == started.isoformat()


def test_a_running_job_with_nothing_done_yet_has_no_eta():
    started = CREATED + timedelta(seconds=1)
    view = status_view(_job(JobStatus.RUNNING, 10, started_at=started), started + timedelta(seconds=30))
    assert view["eta_seconds"] is None
    assert view["percent"] == 0.0


def test_percent_is_rounded_to_two_decimals():
    view = status_view(_job(JobStatus.RUNNING, 3, succeeded=1, started_at=CREATED), CREATED + timedelta(seconds=1))
    assert view["percent"] == 33.33


@pytest.mark.parametrize(
    ("status", "counts"),
    [
        (JobStatus.COMPLETED, {"succeeded": 10}),
        (JobStatus.PARTIALLY_FAILED, {"succeeded": 6, "failed": 4}),
        (JobStatus.FAILED, {"failed": 10}),
        (JobStatus.CANCELLED, {"succeeded": 2, "cancelled": 3}),
    ],
)
def test_a_finished_job_has_an_eta_of_zero_and_shows_when_it_finished(status, counts):
    finished = CREATED + timedelta(minutes=2)
    job = _job(status, 10, started_at=CREATED, finished_at=finished, error="why", **counts)
    view = status_view(job, finished + timedelta(hours=1))
    assert view["status"] == status.value
    assert view["eta_seconds"] == 0.0
    assert view["finished_at"] == finished.isoformat()
    assert view["error"] == "why"
    assert view["counts"]["pending"] == 10 - sum(counts.values())


def test_a_cancelled_job_with_items_never_run_shows_them_as_pending():
    job = _job(
        JobStatus.CANCELLED,
        10,
        succeeded=2,
        started_at=CREATED,
        finished_at=CREATED,
        cancel_requested_at=CREATED,
    )
    view = status_view(job, CREATED)
    assert view["percent"] == 20.0
    assert view["counts"]["pending"] == 8
    assert view["cancel_requested_at"] == CREATED.isoformat()


def test_a_job_of_zero_items_is_one_hundred_percent_done():
    view = status_view(_job(JobStatus.COMPLETED, 0, finished_at=CREATED), CREATED)
    assert view["percent"] == 100.0
    assert view["counts"]["pending"] == 0


def test_percent_never_exceeds_one_hundred_even_if_counters_overshoot_the_total():
    view = status_view(_job(JobStatus.COMPLETED, 4, succeeded=5, finished_at=CREATED), CREATED)
    assert view["percent"] == 100.0
    assert view["counts"]["pending"] == 0


def test_the_view_names_the_job_and_its_priority_as_plain_strings():
    job = _job(JobStatus.QUEUED, 1)
    view = status_view(job, CREATED)
    assert view["job_id"] == str(job.job_id)
    assert (view["tenant"], view["kind"], view["priority"]) == ("acme", "bench.noop", "high")
    assert view["created_at"] == CREATED.isoformat()
