"""Admission rules: run, wait or 429; how many waiting jobs start; what a caller sees about its place in line."""

import pytest

from services.intake.submission.admission import Standing, TenantLoad, admit, promotions, queue_view
from shared.errors import WaitingLineFull
from shared.plans import PlanDefaults
from sluice.contracts.events import JobStatus

PLAN = PlanDefaults().plan(max_active_jobs=2, max_waiting_jobs=1)


def test_a_job_under_the_active_limit_is_queued_and_one_over_it_waits() -> None:
    assert admit(TenantLoad(active=1, waiting=0), PLAN, 30) is JobStatus.QUEUED
    assert admit(TenantLoad(active=2, waiting=0), PLAN, 30) is JobStatus.WAITING


def test_beyond_the_waiting_limit_the_job_is_turned_away_naming_the_limit_and_when_to_retry() -> None:
    with pytest.raises(WaitingLineFull) as caught:
        admit(TenantLoad(active=2, waiting=1), PLAN, 30)

    assert (caught.value.limit, caught.value.maximum, caught.value.retry_after_s) == ("max_waiting_jobs", 1, 30)


def test_as_many_waiting_jobs_start_as_there_are_free_slots() -> None:
    assert promotions(TenantLoad(active=0, waiting=5), PLAN) == 2
    assert promotions(TenantLoad(active=1, waiting=5), PLAN) == 1
    assert promotions(TenantLoad(active=2, waiting=5), PLAN) == 0
    assert promotions(TenantLoad(active=0, waiting=1), PLAN) == 1
    assert promotions(TenantLoad(active=3, waiting=1), PLAN) == 0


def test_a_waiting_job_shows_its_place_and_an_eta_from_the_tenants_rate() -> None:
    view = queue_view(JobStatus.WAITING, 100, Standing(jobs_ahead=1, items_ahead=900, items_per_second=50.0))

    assert view == {"queue_position": 2, "eta_seconds": 20.0}


def test_no_eta_is_guessed_before_the_tenant_has_a_rate_and_running_jobs_have_no_queue_position() -> None:
    assert queue_view(JobStatus.QUEUED, 10, Standing(0, 0, 0.0)) == {"queue_position": 1}
    assert queue_view(JobStatus.RUNNING, 10, Standing(0, 0, 5.0)) == {"queue_position": None}
