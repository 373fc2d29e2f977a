"""What the client returns: typed views of intake's answers (the wire contracts are in sluice.contracts)."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from sluice.contracts.events import ItemStatus, JobStatus, Priority
from sluice.contracts.jobs import JobAccepted

__all__ = [
    "ItemResult",
    "JobAccepted",
    "JobCountsView",
    "JobView",
    "JobsPage",
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
