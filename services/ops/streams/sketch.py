"""What the tasks topic tells about each job: enough to write its ``jobs`` row again (pure)."""

from dataclasses import dataclass, field
from uuid import UUID

from pydantic import JsonValue

from shared.records import NewJob
from sluice.contracts.events import Priority, TaskBatch

REBUILT_SOURCE = "rebuild"


@dataclass
class JobSketch:
    """One job as its first-generation task batches describe it (redrives and repeats counted once)."""

    job_id: UUID
    tenant: str
    kind: str
    options: dict[str, JsonValue]
    priority: Priority
    first_seen_ms: int
    batch_sizes: dict[int, int] = field(default_factory=dict)

    @property
    def total_items(self) -> int:
        return sum(self.batch_sizes.values())

    def new_job(self) -> NewJob:
        return NewJob(
            job_id=self.job_id, tenant=self.tenant, kind=self.kind, priority=self.priority, options=self.options,
            callback_url=None, source=REBUILT_SOURCE, idempotency_key=None, request_fingerprint=None,
            total_items=self.total_items, total_batches=len(self.batch_sizes),
        )  # fmt: skip


def add_batch(sketches: dict[UUID, JobSketch], batch: TaskBatch, timestamp_ms: int) -> None:
    """Fold one task batch in; batches that only carry redriven items (generation > 0) add nothing."""
    first_generation = [item for item in batch.items if item.generation == 0]
    if not first_generation:
        return
    sketch = sketches.get(batch.job_id)
    if sketch is None:
        sketch = sketches[batch.job_id] = JobSketch(
            batch.job_id, batch.tenant, batch.kind, dict(batch.options), batch.priority, timestamp_ms
        )
    sketch.first_seen_ms = min(sketch.first_seen_ms, timestamp_ms)
    sketch.batch_sizes[batch.batch_index] = max(sketch.batch_sizes.get(batch.batch_index, 0), len(batch.items))
