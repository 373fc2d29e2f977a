"""Live progress: one job-events consumer per intake process, fanned out to its Server-Sent-Events clients.

Each replica reads the whole job-events topic with its own consumer (no consumer group, nothing committed), so a
client gets its job's events whichever replica it is connected to; no client polls the database.
"""

import asyncio
import contextlib
import logging
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import JsonValue

from shared.config import KafkaSettings
from sluice.contracts.events import ItemsChanged, JobProgressed, decode, job_event

log = logging.getLogger(__name__)

CLIENT_QUEUE = 64
"""Events buffered per client; when a slow client's queue is full its oldest progress event is dropped
(progress events supersede each other; a terminal event is never dropped)."""


def live_view(event: Any) -> dict[str, JsonValue] | None:
    """The SSE ``data`` of a job event: its type, status, counts and percent; None for an event that says nothing
    about progress (ItemsChanged, written after a rescan's results)."""
    if isinstance(event, ItemsChanged):
        return None
    counts = event.counts
    done = counts.done
    percent = event.percent if isinstance(event, JobProgressed) else 100.0
    status = {"job.progress": "running", "job.failed": "failed", "job.cancelled": "cancelled"}.get(event.type)
    return {
        "type": event.type,
        "job_id": str(event.job_id),
        "status": status or str(getattr(event, "status", "completed")),
        "counts": {**counts.model_dump(), "pending": counts.pending, "done": done},
        "percent": percent,
    }


class JobEventHub:
    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._clients: dict[UUID, set[asyncio.Queue[dict[str, JsonValue]]]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            self._settings.topics.job_events,
            **self._settings.connection.client_options(
                client_id=self._client_id, group_id=None, enable_auto_commit=False, auto_offset_reset="latest"
            ),
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._pump())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()

    def client_count(self) -> int:
        return sum(len(queues) for queues in self._clients.values())

    def attach(self, job_id: UUID) -> asyncio.Queue[dict[str, JsonValue]]:
        """A queue that receives the job's events from now on; ``detach`` it when the client goes."""
        queue: asyncio.Queue[dict[str, JsonValue]] = asyncio.Queue(maxsize=CLIENT_QUEUE)
        self._clients.setdefault(job_id, set()).add(queue)
        return queue

    def detach(self, job_id: UUID, queue: asyncio.Queue[dict[str, JsonValue]]) -> None:
        queues = self._clients.get(job_id, set())
        queues.discard(queue)
        if not queues:
            self._clients.pop(job_id, None)

    def publish(self, view: dict[str, JsonValue]) -> None:
        for queue in self._clients.get(UUID(str(view["job_id"])), ()):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(view)

    async def _pump(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                polled = await self._consumer.getmany(timeout_ms=1000, max_records=500)
            except KafkaError as exc:
                log.warning("job-events consumer: %s; retrying", exc)
                await asyncio.sleep(1)
                continue
            for records in polled.values():
                for record in records:
                    if not self._clients:
                        continue
                    try:
                        event = decode(job_event, record.value, "job event")
                    except ValueError as exc:
                        log.warning("skipped a job event at %s[%d]@%d: %s", record.topic, record.partition,
                                    record.offset, exc)  # fmt: skip
                        continue
                    if (view := live_view(event)) is not None:
                        self.publish(view)
