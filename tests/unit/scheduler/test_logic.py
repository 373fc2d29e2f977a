"""Pure parts of deadlines, stalls and retention: the timeout option, messages, cutoffs, settings and the view."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from pydantic import ValidationError

from services.intake.logic import status_view, validate_options
from services.scheduler.logic import retention_cutoff, sweep_summary
from services.scheduler.settings import SchedulerSettings
from shared.errors import InvalidJob
from shared.kinds.bench import BENCH_CPU
from shared.records import JobRecord, PurgeOutcome, StalledJob, SweepOutcome, TimedOutJob, job_timeout_option
from shared.stores.sweeps import item_timeout_error, timeout_error
from sluice.contracts.events import JobStatus, Priority

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("value", [1, 1.5, 600, 7 * 24 * 3600])
def test_a_job_timeout_from_one_second_to_seven_days_is_accepted(value):
    assert job_timeout_option({"job_timeout_s": value}) == float(value)


def test_a_job_without_a_timeout_option_has_none():
    assert job_timeout_option({"rounds": 3}) is None


@pytest.mark.parametrize("value", [0, 0.5, -1, 7 * 24 * 3600 + 1, True, "60", [60]])
def test_a_job_timeout_outside_the_bounds_or_not_a_number_is_rejected(value):
    with pytest.raises(ValueError, match="job_timeout_s"):
        job_timeout_option({"job_timeout_s": value})


def test_intake_rejects_a_bad_job_timeout_naming_the_option():
    with pytest.raises(InvalidJob) as caught:
        validate_options(BENCH_CPU, {"rounds": 10, "job_timeout_s": 0})

    assert caught.value.field == "options.job_timeout_s"


def test_intake_keeps_a_valid_job_timeout_in_the_options():
    assert validate_options(BENCH_CPU, {"job_timeout_s": 2}) == {"job_timeout_s": 2}


def test_the_timeout_messages_name_the_timeout_and_the_unfinished_items():
    assert timeout_error(90.0, 12) == "timed out after 90 s: 12 items unfinished"
    assert timeout_error(2.5, 1) == "timed out after 2.5 s: 1 items unfinished"
    assert item_timeout_error(1800.0) == "job timed out after 1800 s"


def test_the_retention_cutoff_is_the_retention_before_now():
    assert retention_cutoff(NOW, 30) == NOW - timedelta(days=30)
    assert retention_cutoff(NOW, 0.5) == NOW - timedelta(hours=12)


def test_a_quiet_sweep_logs_nothing():
    assert sweep_summary(SweepOutcome(swept=True), PurgeOutcome()) is None


def test_a_busy_sweep_summarises_every_change():
    outcome = SweepOutcome(
        swept=True,
        timed_out=(TimedOutJob(uuid4(), "acme", "failed", 3, "x"), TimedOutJob(uuid4(), "acme", "failed", 4, "y")),
        newly_stalled=(StalledJob(uuid4(), "acme", NOW, None),),
        unstalled=2,
    )

    summary = sweep_summary(outcome, PurgeOutcome(results=20_000, jobs=5))

    assert summary == (
        "timed out 2 jobs (7 items unfinished); 1 newly stalled; 2 no longer stalled; purged 5 jobs and 20000 results"
    )


def test_the_scheduler_defaults_are_a_30_minute_timeout_5_minute_stall_window_and_30_days_retention():
    settings = SchedulerSettings()

    assert (settings.job_timeout_s, settings.stall_window_s, settings.result_retention_days) == (1800, 300, 30)
    assert settings.sweep_interval_s == 5.0


def test_a_default_job_timeout_beyond_seven_days_is_refused():
    with pytest.raises(ValidationError):
        SchedulerSettings(job_timeout_s=7 * 24 * 3600 + 1)


def _job(status: JobStatus, **extra) -> JobRecord:
    fields = dict(
        job_id=uuid4(), tenant="acme", kind="bench.cpu", priority=Priority.NORMAL, options={}, callback_url=None,
        source="rest", idempotency_key=None, request_fingerprint=None, status=status, total_items=4,
        total_batches=1, succeeded=1, failed=0, cancelled=0, error=None, created_at=NOW, accepted_at=NOW,
        started_at=NOW, finished_at=None, cancel_requested_at=None,
    )  # fmt: skip
    return JobRecord(**{**fields, **extra})


def test_the_status_view_shows_a_stalled_running_job_and_its_deadline():
    deadline = NOW + timedelta(minutes=30)
    view = status_view(_job(JobStatus.RUNNING, deadline_at=deadline, stalled_since=NOW), NOW + timedelta(minutes=6))

    assert (view["stalled"], view["stalled_since"]) == (True, NOW.isoformat())
    assert view["deadline_at"] == deadline.isoformat()


def test_the_status_view_shows_a_job_without_a_stall_as_not_stalled():
    view = status_view(_job(JobStatus.RUNNING), NOW)

    assert (view["stalled"], view["stalled_since"], view["deadline_at"]) == (False, None, None)


def test_a_finished_job_is_never_shown_stalled():
    view = status_view(_job(JobStatus.FAILED, stalled_since=NOW, finished_at=NOW), NOW)

    assert view["stalled"] is False
