from uuid import uuid4

import pytest

from services.aggregator.logic import backoff_delay, lifecycle_event, progress_event
from shared.records import JobState
from sluice.contracts.events import JobCancelled, JobCompleted, JobCounts, JobFailed, JobStatus


def _state(status: JobStatus, total=10, succeeded=0, failed=0, cancelled=0, error=None) -> JobState:
    counts = JobCounts(total=total, succeeded=succeeded, failed=failed, cancelled=cancelled)
    return JobState(uuid4(), "acme", status, counts, error)


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
