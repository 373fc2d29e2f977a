"""What the stores read and write, as plain values: no SQL and no connections, so pure logic can use them."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, JsonValue

from sluice.contracts.events import JobCounts, JobStatus, Priority


class NewJob(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: UUID
    tenant: str
    kind: str
    priority: Priority
    options: dict[str, JsonValue]
    callback_url: str | None
    source: str
    idempotency_key: str | None
    request_fingerprint: str | None
    total_items: int
    total_batches: int


class JobRecord(NewJob):
    """A job row as stored: what was submitted, plus status, counters and times."""

    status: JobStatus
    succeeded: int
    failed: int
    cancelled: int
    timed_out: int = 0
    error: str | None
    created_at: datetime
    accepted_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    deadline_at: datetime | None = None
    last_progress_at: datetime | None = None
    stalled_since: datetime | None = None

    @property
    def counts(self) -> JobCounts:
        return JobCounts(
            total=self.total_items,
            succeeded=self.succeeded,
            failed=self.failed,
            cancelled=self.cancelled,
            timed_out=self.timed_out,
        )

    @property
    def accepted(self) -> bool:
        return self.accepted_at is not None


@dataclass(frozen=True)
class JobState:
    job_id: UUID
    tenant: str
    status: JobStatus
    counts: JobCounts
    error: str | None = None


DEFAULT_JOB_TIMEOUT_S = 30 * 60.0


MIN_JOB_TIMEOUT_S = 1


MAX_JOB_TIMEOUT_S = 7 * 24 * 3600


def job_timeout_option(options: dict[str, JsonValue]) -> float | None:
    """``options.job_timeout_s`` in seconds, if given; ValueError unless a number from 1 s to 7 days."""
    value = options.get("job_timeout_s")
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (MIN_JOB_TIMEOUT_S <= value <= MAX_JOB_TIMEOUT_S)
    ):
        raise ValueError(f"job_timeout_s must be a number of seconds from {MIN_JOB_TIMEOUT_S} to {MAX_JOB_TIMEOUT_S}")
    return float(value)


@dataclass(frozen=True)
class TimedOutJob:
    job_id: UUID
    tenant: str
    status: str
    unfinished: int
    """Items that had no result and now have a timed_out one."""
    error: str


@dataclass(frozen=True)
class StalledJob:
    job_id: UUID
    tenant: str
    stalled_since: datetime
    last_progress_at: datetime | None


@dataclass(frozen=True)
class SweepOutcome:
    swept: bool
    """False when another replica held the sweep lock (or the sweep gave way to a concurrent write)."""
    deadlines_stamped: int = 0
    timed_out: tuple[TimedOutJob, ...] = ()
    newly_stalled: tuple[StalledJob, ...] = ()
    unstalled: int = 0


@dataclass(frozen=True)
class PurgeOutcome:
    results: int = 0
    jobs: int = 0
