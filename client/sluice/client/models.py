"""What the client returns: typed views of intake's answers (the wire contracts are in sluice.contracts)."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from sluice.contracts.events import ItemStatus, JobStatus, Priority
from sluice.contracts.jobs import JobAccepted

__all__ = [
    "Dashboard",
    "DeadLetter",
    "DeadLettersPage",
    "ItemResult",
    "JobAccepted",
    "JobCountsView",
    "JobView",
    "JobsPage",
    "Readiness",
    "ResultsPage",
]


class _View(BaseModel):
    # Answers may gain fields before this client knows them: keep them rather than fail.
    model_config = ConfigDict(frozen=True, extra="allow")


class JobCountsView(_View):
    total: int
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    timed_out: int = 0
    pending: int = 0

    @property
    def done(self) -> int:
        return self.total - self.pending


class JobView(_View):
    """GET /v1/jobs/{id}: a job's status, counts and times."""

    job_id: UUID
    tenant: str
    kind: str
    priority: Priority = Priority.NORMAL
    status: JobStatus
    counts: JobCountsView
    percent: float
    options: dict[str, JsonValue] = Field(default_factory=dict)
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    eta_seconds: float | None = None
    error: str | None = None
    deadline_at: datetime | None = None
    stalled: bool = False
    stalled_since: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal


class JobsPage(_View):
    """GET /v1/jobs: newest first; pass ``next_cursor`` back for the next page (None on the last)."""

    jobs: list[JobView]
    next_cursor: str | None = None


class ItemResult(_View):
    """One item's result as the REST API and the exports give it."""

    index: int
    status: ItemStatus
    input: JsonValue = None
    output: JsonValue = None
    error: str | None = None
    error_type: str | None = None
    attempts: int = 1
    duration_ms: float = 0.0


class ResultsPage(_View):
    job_id: UUID
    items: list[ItemResult]
    next_cursor: str | None = None
    limit: int


class DeadLetter(_View):
    """A dead letter: an item (or message) that ended on a dead-letter topic. ``headers``, ``payload`` and
    ``raw_excerpt`` come only with one shown by id (``dead_letter``), not in a listing."""

    id: int
    topic: str
    partition: int
    offset: int
    job_id: UUID | None = None
    tenant: str | None = None
    kind: str | None = None
    item_index: int | None = None
    generation: int | None = None
    reason: str | None = None
    error_type: str | None = None
    attempts: int | None = None
    first_failure_at: datetime | None = None
    last_failure_at: datetime | None = None
    trace_id: str | None = None
    recorded_at: datetime
    redriven_at: datetime | None = None
    redrive_count: int = 0
    headers: dict[str, str] | None = None
    payload: dict[str, JsonValue] | None = None
    raw_excerpt: str | None = None


class DeadLettersPage(_View):
    """GET /v1/admin/dlq: oldest first; pass ``next_cursor`` back for the next page (None on the last)."""

    dead_letters: list[DeadLetter]
    next_cursor: str | None = None


class Readiness(_View):
    """GET /readyz: ready when PostgreSQL and Kafka answer intake; Redis is reported (it only degrades)."""

    ready: bool
    checks: dict[str, str] = Field(default_factory=dict)


class Dashboard(_View):
    """GET /v1/dashboard: the tenant's recent jobs, throughput, latest dead letters, consumer lag per partition
    (scraped from the services intake is told of) and backlog (batches not yet released, and in flight)."""

    tenant: str
    jobs: list[dict[str, JsonValue]] = Field(default_factory=list)
    throughput: list[dict[str, JsonValue]] = Field(default_factory=list)
    dead_letters: list[dict[str, JsonValue]] = Field(default_factory=list)
    lag: list[dict[str, JsonValue]] = Field(default_factory=list)
    backlog: dict[str, JsonValue] | None = None
    """None from an intake that does not report it."""
