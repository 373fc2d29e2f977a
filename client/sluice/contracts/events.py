"""Event contracts: every message on a Sluice topic is one of these, in a common envelope.

Events are named in the past tense, commands in the imperative. Each carries its own
``schema_version``; a change to a contract bumps it (and the topic table in the README).
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError

MAX_BATCH_SIZE = 1000


def utc_now() -> datetime:
    return datetime.now(UTC)


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    BULK = "bulk"


class ItemStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class JobStatus(StrEnum):
    WAITING = "waiting"
    """Accepted beyond the tenant's active-job limit; starts by itself when a slot frees."""
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self not in (JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RUNNING)


TERMINAL_STATUSES: tuple[str, ...] = tuple(status.value for status in JobStatus if status.is_terminal)
"""The statuses a job never leaves."""


class Envelope(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID = Field(default_factory=uuid4)
    schema_version: Literal[1] = 1
    tenant: str = Field(min_length=1, max_length=200, description="Owner of the job; the unit of fairness")
    job_id: UUID
    occurred_at: AwareDatetime = Field(default_factory=utc_now)


class JobRequested(Envelope):
    """Command from another system: run this job (consumed by intake's Kafka front door)."""

    type: Literal["job.requested"] = "job.requested"
    kind: str = Field(min_length=1, max_length=200)
    items: list[JsonValue] = Field(min_length=1)
    options: dict[str, JsonValue] = Field(default_factory=dict)
    priority: Priority = Priority.NORMAL
    callback_url: str | None = None


class TaskItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0, description="Position of the item in its job; with job_id, the item's identity")
    input: JsonValue
    attempt: int = Field(1, ge=1, description="1 for the first try; retries count up")
    first_failed_at: AwareDatetime | None = Field(None, description="When the first attempt failed (retries only)")
    generation: int = Field(0, ge=0, description="0 as submitted; each redrive of the item adds 1")


class TaskBatch(Envelope):
    """One message on the tasks topic: a batch of one job's items for the processor."""

    type: Literal["task.batch"] = "task.batch"
    kind: str
    batch_index: int = Field(ge=0)
    options: dict[str, JsonValue] = Field(default_factory=dict)
    priority: Priority = Priority.NORMAL
    items: list[TaskItem] = Field(min_length=1, max_length=MAX_BATCH_SIZE)


class ItemResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0)
    status: ItemStatus
    input: JsonValue = None
    output: JsonValue = None
    error: str | None = None
    error_type: str | None = None
    attempts: int = Field(1, ge=0)
    duration_ms: float = Field(0.0, ge=0)
    generation: int = Field(0, ge=0, description="A result of a later generation replaces a failed one")
    fingerprint: str | None = Field(
        None, max_length=200, description="Hash of the meaningful output (succeeded items); compared across jobs"
    )


class BatchProcessed(Envelope):
    """One message on the results topic: the results of one TaskBatch, one per item."""

    type: Literal["batch.processed"] = "batch.processed"
    # 2: results carry a fingerprint; 1 is still read. Widens Envelope's Literal[1], which mypy rejects as an override.
    schema_version: Literal[1, 2] = 2  # type: ignore[assignment]
    kind: str
    batch_index: int = Field(ge=0)
    results: list[ItemResult] = Field(min_length=1, max_length=MAX_BATCH_SIZE)


BatchResult = BatchProcessed


class CancelJob(Envelope):
    """Command on the results topic: the job was cancelled by its owner; the aggregator ends it."""

    type: Literal["job.cancel"] = "job.cancel"
    reason: str = "cancelled by request"


class JobCounts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    total: int = Field(ge=0)
    succeeded: int = Field(0, ge=0)
    failed: int = Field(0, ge=0)
    cancelled: int = Field(0, ge=0)
    timed_out: int = Field(0, ge=0)

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cancelled + self.timed_out

    @property
    def pending(self) -> int:
        return max(self.total - self.done, 0)


class JobProgressed(Envelope):
    """On the job-events topic, throttled: how far a running job has got."""

    type: Literal["job.progress"] = "job.progress"
    counts: JobCounts
    percent: float = Field(ge=0, le=100)


class JobCompleted(Envelope):
    """On the job-events topic: every item has a result (status completed or partially_failed)."""

    type: Literal["job.completed"] = "job.completed"
    status: Literal[JobStatus.COMPLETED, JobStatus.PARTIALLY_FAILED]
    counts: JobCounts


class JobFailed(Envelope):
    """On the job-events topic: every item failed, or the job could not run."""

    type: Literal["job.failed"] = "job.failed"
    counts: JobCounts
    reason: str


class JobCancelled(Envelope):
    """On the job-events topic: the job was cancelled; unprocessed items end as cancelled."""

    type: Literal["job.cancelled"] = "job.cancelled"
    counts: JobCounts
    reason: str


class RescanReason(StrEnum):
    PERIODIC = "periodic"
    ADAPTIVE = "adaptive"
    EVENT = "event"
    SAMPLE = "sample"
    ESCALATION = "escalation"


class RescanRequested(JobRequested):
    """Command from the scheduler on the requests topic: rescan these watched items.

    Shaped like JobRequested so it takes intake's normal path (limits, fair share, priorities); its job_id
    is the trigger id, so a re-published trigger is accepted once.
    """

    type: Literal["rescan.requested"] = "rescan.requested"  # type: ignore[assignment]
    watch_id: UUID
    reason: RescanReason


class ItemsChanged(Envelope):
    """On the job-events topic, per job and aggregator write: how its new results compare with the items' last."""

    type: Literal["items.changed"] = "items.changed"
    kind: str
    changed: list[int] = Field(default_factory=list, description="Indexes of items whose output changed")
    unchanged: int = Field(0, ge=0)
    new: int = Field(0, ge=0, description="Items seen for the first time")


class RescanTrigger(BaseModel):
    """On ``<prefix>.triggers``, from other systems: these entities changed; rescan the watched items that match."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["rescan.trigger"] = "rescan.trigger"
    schema_version: Literal[1] = 1
    event_id: UUID = Field(default_factory=uuid4)
    tenant: str = Field(min_length=1, max_length=200)
    keys: list[str] = Field(default_factory=list, max_length=10_000, description="Item keys (web.page: the URL)")
    tags: list[str] = Field(default_factory=list, max_length=100, description="Watch tags")
    occurred_at: AwareDatetime = Field(default_factory=utc_now)


JobProgress = JobProgressed

TERMINAL_EVENT_TYPES = frozenset({"job.completed", "job.failed", "job.cancelled"})
"""The job-events types that end a job: the last event a job has."""

ResultsTopicMessage = Annotated[BatchProcessed | CancelJob, Field(discriminator="type")]
JobEvent = Annotated[
    JobProgressed | JobCompleted | JobFailed | JobCancelled | ItemsChanged, Field(discriminator="type")
]
AnyEvent = Annotated[
    JobRequested
    | RescanRequested
    | TaskBatch
    | BatchProcessed
    | CancelJob
    | JobProgressed
    | JobCompleted
    | JobFailed
    | JobCancelled
    | ItemsChanged
    | RescanTrigger,
    Field(discriminator="type"),
]

rescan_requested: TypeAdapter[RescanRequested] = TypeAdapter(RescanRequested)
rescan_trigger: TypeAdapter[RescanTrigger] = TypeAdapter(RescanTrigger)

results_topic_message: TypeAdapter[Any] = TypeAdapter(ResultsTopicMessage)
job_event: TypeAdapter[Any] = TypeAdapter(JobEvent)
any_event: TypeAdapter[Any] = TypeAdapter(AnyEvent)

task_batch: TypeAdapter[TaskBatch] = TypeAdapter(TaskBatch)
job_requested: TypeAdapter[JobRequested] = TypeAdapter(JobRequested)

T = TypeVar("T")


def decode(adapter: TypeAdapter[T], raw: bytes | None, what: str) -> T:
    """Parse one message as ``what``; raises ValueError with the first few problems, for a reason header."""
    if not raw:
        raise ValueError("empty message")
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()[:3])
        raise ValueError(f"not a {what}: {problems}") from exc
