"""Processor: a consumer group over the tasks topic that runs each item through its kind's handler."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from uuid import UUID

from aiokafka import ConsumerRecord
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from redis.exceptions import RedisError

from services.processor.logic import decode_task_batch
from services.processor.runner import KindRunner
from services.processor.settings import ProcessorSettings
from shared.events import TaskBatch
from shared.kafka import SendWindow, ensure_topics, error_headers, make_broker
from shared.kinds import load_kinds
from shared.readiness import wait_for
from shared.redis import CancellationFlags, open_redis
from shared.telemetry import make_tracer_provider

log = logging.getLogger(__name__)


@dataclass
class BatchWork:
    """One poll of task batches: run them, publish their results, and only then let the offsets go."""

    runner: KindRunner
    window: SendWindow
    flags: CancellationFlags
    settings: ProcessorSettings

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """1. decode (undecodable → rejected topic); 2. run the batches concurrently, publishing each one's
        BatchProcessed as soon as it is done; 3. wait for the broker's acks=all on all of them; 4. return,
        after which the offsets are committed. A crash anywhere before 4 redelivers the poll; the
        aggregator ignores results it already has."""
        topics = self.settings.kafka.topics
        batches: list[TaskBatch] = []
        for record in records:
            try:
                batches.append(decode_task_batch(record.value))
            except ValueError as exc:
                log.warning(
                    "rejected a task message at %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc
                )
                await self.window.send(
                    record.value or b"", topics.rejected, key=record.key, headers=error_headers(str(exc), record.topic)
                )
        cancelled = await self._cancelled_jobs(batches)

        async def run_and_publish(batch: TaskBatch) -> None:
            result = await self.runner.run(batch, is_cancelled=batch.job_id in cancelled)
            await self.window.send(result.model_dump_json().encode(), topics.results, key=str(result.job_id).encode())

        await asyncio.gather(*(run_and_publish(batch) for batch in batches))
        await self.window.flush()

    async def _cancelled_jobs(self, batches: Sequence[TaskBatch]) -> set[UUID]:
        try:
            return await self.flags.cancelled_among(batch.job_id for batch in batches)
        except (RedisError, OSError) as exc:
            # Degraded, not stopped: without Redis a cancelled job's remaining items still run;
            # the job itself is already marked cancelled by the aggregator.
            log.warning("cancellation flags unavailable, running the batches: %s", exc)
            return set()


@dataclass
class Runtime:
    work: BatchWork | None = None


def build_app(settings: ProcessorSettings) -> FastStream:
    broker = make_broker(
        settings.kafka, client_id="sluice-processor", tracer_provider=make_tracer_provider(settings.otel, "processor")
    )
    runtime = Runtime()
    register_handlers(broker, settings, runtime)
    return FastStream(broker, lifespan=lambda: _lifespan(settings, broker, runtime))


def register_handlers(broker: KafkaBroker, settings: ProcessorSettings, runtime: Runtime) -> None:
    @broker.subscriber(
        settings.kafka.topics.tasks,
        batch=True,
        max_records=settings.batches_per_poll,
        batch_timeout_ms=20,
        group_id=settings.group_id,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=settings.kafka.max_request_bytes,
        # Commit only after the results are acknowledged; an error seeks back and redelivers the poll.
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_task_batches(message: KafkaMessage) -> None:
        assert runtime.work is not None
        await runtime.work.handle(message.raw_message)


@contextlib.asynccontextmanager
async def _lifespan(settings: ProcessorSettings, broker: KafkaBroker, runtime: Runtime) -> AsyncIterator[None]:
    await wait_for("kafka", lambda: ensure_topics(settings.kafka), settings.startup)
    redis_client = open_redis(settings.redis)
    runner = KindRunner(load_kinds(), settings.max_in_flight, settings.item_timeout_s)
    await runner.start(settings.kinds)
    try:
        runtime.work = BatchWork(
            runner, SendWindow(broker, settings.kafka.publish_window), CancellationFlags(redis_client), settings
        )
        yield
    finally:
        await runner.close()
        await redis_client.aclose()
