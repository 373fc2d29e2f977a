"""Processor: a consumer group over the tasks topic (and one per retry tier) that runs each item through its
kind's handler, retrying transient failures through the retry topics and dead-lettering the items that end failed."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from aiokafka import ConsumerRecord
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

from services.processor.logic import BatchOutcome
from services.processor.runner import FailurePolicy, KindRunner
from services.processor.settings import ProcessorSettings
from shared.errors import DependencyUnavailable
from shared.failures import (
    FailureRecord,
    RetryPolicy,
    checked_tiers,
    dead_letter_headers,
    due_wait_s,
    parse_retry_overrides,
    parse_timeout_overrides,
)
from shared.heap import freeze_startup_objects
from shared.kafka import (
    IDLE_POLL_TIMEOUT_MS,
    SendWindow,
    ensure_topics,
    group_options,
    make_broker,
    polled_records,
    undecoded,
)
from shared.kinds import load_kinds
from shared.lag import BrokerLag
from shared.metrics import SluiceMetrics
from shared.ops_server import serving_ops
from shared.readiness import wait_for
from shared.redis import CancellationFlags, open_redis, redis_breaker
from shared.telemetry import make_tracer_provider, tracing_enabled
from shared.tracing import carried, links_to, parent_context, record_headers, span_context_of
from shared.wire import WireTaskBatch, decode_task_batch
from sluice.contracts.events import utc_now
from sluice.contracts.headers import (
    CANCELLED_HEADER,
    DUE_AT_HEADER,
    ERROR_TYPE_HEADER,
    JOB_TRACE_HEADER,
    LAST_FAILURE_HEADER,
    REASON_HEADER,
    SOURCE_TOPIC_HEADER,
    TRACE_ID_HEADER,
)

log = logging.getLogger(__name__)


@dataclass
class BatchWork:
    """One poll of task batches: run them, publish their results, retries and dead letters, and only then
    let the offsets go."""

    runner: KindRunner
    flags: CancellationFlags
    settings: ProcessorSettings
    tracer: Tracer = field(default_factory=lambda: trace.get_tracer("sluice.processor"))
    metrics: SluiceMetrics | None = None

    async def handle(self, records: Sequence[ConsumerRecord], window: SendWindow, tier_s: int | None = None) -> None:
        """1. decode (undecodable → tasks dead-letter topic); 2. on a retry topic, wait until the poll is due
        (at most the tier's delay); 3. run the batches concurrently, publishing each one's BatchProcessed,
        its retries (to the retry topic of their tier) and its dead letters as soon as it is done; 4. wait
        for the broker's acks=all on all of them; 5. return, after which the offsets are committed. A crash
        anywhere before 5 redelivers the poll; the aggregator ignores results it already has."""
        batches: list[WireTaskBatch] = []
        source: dict[int, str] = {}  # id(batch) → the topic it came from, for the dead-letter headers
        headers: dict[int, dict[str, str]] = {}  # id(batch) → its message's headers (trace context)
        for record in records:
            try:
                batches.append(decode_task_batch(record.value))
                source[id(batches[-1])] = record.topic
                headers[id(batches[-1])] = record_headers(record.headers)
            except ValueError as exc:
                await self._dead_letter_undecodable(record, exc, window)
        if tier_s is not None and records:
            now_ms = int(time.time() * 1000)
            await asyncio.sleep(max(due_wait_s(_due_at_ms(record), now_ms, tier_s) for record in records))
        # Batches released after their job was cancelled say so themselves; only the others need Redis.
        cancelled = {batch.job_id for batch in batches if CANCELLED_HEADER in headers[id(batch)]}
        cancelled |= await self._cancelled_jobs([batch for batch in batches if batch.job_id not in cancelled])
        poll_span = trace.get_current_span().get_span_context()
        turn = asyncio.Lock()  # this poll's plain-function batches run one after another (KindRunner.run)

        async def run_and_publish(batch: WireTaskBatch) -> None:
            message_headers = headers.get(id(batch), {})
            # A child of the publisher's span (the job's trace), linked to the job's root span and to this poll,
            # which mixes batches of many jobs.
            with self.tracer.start_as_current_span(
                "process task.batch",
                context=parent_context(message_headers),
                kind=SpanKind.CONSUMER,
                links=links_to([span_context_of(message_headers.get(JOB_TRACE_HEADER)), poll_span], limit=2),
                attributes={
                    "sluice.job_id": str(batch.job_id),
                    "sluice.tenant": batch.tenant,
                    "sluice.kind": batch.kind,
                    "sluice.batch_index": batch.batch_index,
                    "sluice.items": len(batch.items),
                },
            ):
                outcome = await self.runner.run(batch, is_cancelled=batch.job_id in cancelled, turn=turn)
                await self._publish(
                    outcome, window, source.get(id(batch), ""), _current_trace_id(), carried(message_headers)
                )

        await asyncio.gather(*(run_and_publish(batch) for batch in batches))
        await window.flush()

    async def _publish(
        self, outcome: BatchOutcome, window: SendWindow, source_topic: str, trace_id: str, job_headers: dict[str, str]
    ) -> None:
        topics = self.settings.kafka.topics
        batch = outcome.batch
        self._count(outcome)
        if (processed := outcome.processed_json()) is not None:
            await window.send(processed, topics.results, key=str(batch.job_id).encode(), headers=job_headers)
        for tier, retry in outcome.retry_batches():
            due_at_ms = int(time.time() * 1000) + tier * 1000
            await window.send(
                retry.model_dump_json().encode(),
                topics.retry(tier),
                key=f"{batch.job_id}:{batch.batch_index}".encode(),
                headers={DUE_AT_HEADER: str(due_at_ms), **job_headers},
            )
        if outcome.retries or outcome.dead_letters:
            log.info(
                "job %s batch %d: %d items to retry, %d dead-lettered",
                batch.job_id,
                batch.batch_index,
                len(outcome.retries),
                len(outcome.dead_letters),
            )
        for letter in outcome.dead_letters:
            record = FailureRecord(
                reason=letter.result.error or "",
                error_type=letter.result.error_type or "",
                attempts=letter.result.attempts,
                first_failure_at=letter.first_failure_at,
                last_failure_at=letter.last_failure_at,
                source_topic=source_topic,
                kind=batch.kind,
                job_id=str(batch.job_id),
                tenant=batch.tenant,
                trace_id=trace_id,
            )
            await window.send(
                outcome.dead_letter_batch(letter).model_dump_json().encode(),
                topics.tasks_dlq,
                key=str(batch.job_id).encode(),
                headers=dead_letter_headers(record),
            )

    def _count(self, outcome: BatchOutcome) -> None:
        if self.metrics is None:
            return
        kind = outcome.batch.kind
        statuses: dict[str, int] = {}
        for result in outcome.results:
            statuses[result.status.value] = statuses.get(result.status.value, 0) + 1
        if outcome.successes:
            statuses["succeeded"] = len(outcome.successes)
        for status, count in statuses.items():
            self.metrics.items_processed.add(count, {"kind": kind, "status": status})
        if outcome.retries:
            self.metrics.items_retried.add(len(outcome.retries), {"kind": kind})

    async def _dead_letter_undecodable(self, record: ConsumerRecord, exc: ValueError, window: SendWindow) -> None:
        log.warning("dead-lettered a task message at %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc)
        headers = {
            REASON_HEADER: str(exc)[:1000],
            ERROR_TYPE_HEADER: "UndecodableMessage",
            SOURCE_TOPIC_HEADER: record.topic,
            LAST_FAILURE_HEADER: utc_now().isoformat(),
            TRACE_ID_HEADER: _current_trace_id(),
        }
        await window.send(record.value or b"", self.settings.kafka.topics.tasks_dlq, key=record.key, headers=headers)

    async def _cancelled_jobs(self, batches: Sequence[WireTaskBatch]) -> set[UUID]:
        try:
            return await self.flags.cancelled_among(batch.job_id for batch in batches)
        except DependencyUnavailable:
            # Degraded, not stopped (the breaker logs the outage once): a cancelled job's remaining items run;
            # the job itself is still ended cancelled by the aggregator.
            return set()


def _due_at_ms(record: ConsumerRecord) -> int | None:
    for name, value in record.headers or ():
        if name == DUE_AT_HEADER:
            with contextlib.suppress(ValueError):
                return int(value)
    return None


def _current_trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


@dataclass
class Runtime:
    work: BatchWork | None = None
    windows: dict[str, SendWindow] = field(default_factory=dict)
    """One send window per subscriber: each flushes only its own sends before its offsets commit."""
    metrics: SluiceMetrics = field(default_factory=SluiceMetrics)
    tracer: Tracer | None = None
    """None when tracing is off: no batch or item spans are made at all."""


def failure_policy(settings: ProcessorSettings) -> FailurePolicy:
    """The processor's retry and timeout defaults; raises InvalidRetryOverrides on a bad overrides setting."""
    return FailurePolicy(
        retry=RetryPolicy(settings.retry_max_attempts, settings.retry_base_delay_s),
        kind_overrides=parse_retry_overrides(settings.retry_overrides),
        tiers_s=checked_tiers(settings.kafka.retry_tiers_s),
        item_timeout_s=settings.item_timeout_s,
        kind_timeouts_s=parse_timeout_overrides(settings.item_timeout_overrides),
    )


def build_app(settings: ProcessorSettings) -> FastStream:
    policy = failure_policy(settings)
    tracer_provider = make_tracer_provider(settings.otel, "processor")
    broker = make_broker(settings.kafka, client_id="sluice-processor", tracer_provider=tracer_provider)
    runtime = Runtime()
    runtime.tracer = tracer_provider.get_tracer("sluice.processor") if tracing_enabled(settings.otel) else None
    runtime.metrics.watch_lag(BrokerLag(broker).readings)
    register_handlers(broker, settings, runtime)
    return FastStream(broker, lifespan=lambda: _lifespan(settings, policy, broker, runtime))


def register_handlers(broker: KafkaBroker, settings: ProcessorSettings, runtime: Runtime) -> None:
    topics = settings.kafka.topics
    subscribe(broker, settings, runtime, topics.tasks, settings.group_id, None)
    subscribe(broker, settings, runtime, topics.tasks_high, f"{settings.group_id}-high", None)
    for tier in checked_tiers(settings.kafka.retry_tiers_s):
        subscribe(broker, settings, runtime, topics.retry(tier), f"{settings.group_id}-retry-{tier}s", tier)


def subscribe(
    broker: KafkaBroker, settings: ProcessorSettings, runtime: Runtime, topic: str, group_id: str, tier_s: int | None
) -> None:
    """A batch subscriber on ``topic``; on a retry tier's topic each poll first waits until it is due."""

    @broker.subscriber(
        topic,
        batch=True,
        max_records=settings.batches_per_poll,
        batch_timeout_ms=20 if tier_s is None else IDLE_POLL_TIMEOUT_MS,
        group_id=group_id,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=settings.kafka.max_request_bytes,
        # What the consumer fetches ahead sits in memory: a couple of maximum-size messages is enough to keep busy.
        fetch_max_bytes=2 * settings.kafka.max_request_bytes,
        # Commit only after the results are acknowledged; an error seeks back and redelivers the poll.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=undecoded,
        **group_options(settings.kafka, on_items_path=tier_s is None),
    )
    async def on_task_batches() -> None:
        assert runtime.work is not None
        await runtime.work.handle(polled_records(broker), runtime.windows[topic], tier_s)


@contextlib.asynccontextmanager
async def _lifespan(
    settings: ProcessorSettings, policy: FailurePolicy, broker: KafkaBroker, runtime: Runtime
) -> AsyncIterator[None]:
    await wait_for("kafka", lambda: ensure_topics(settings.kafka), settings.startup)
    redis_client = open_redis(settings.redis)
    tracer = runtime.tracer or trace.NoOpTracer()
    runner = KindRunner(
        load_kinds(),
        settings.max_in_flight,
        policy,
        metrics=runtime.metrics,
        tracer=runtime.tracer,
        item_spans=settings.item_spans,
    )
    await runner.start(settings.kinds)
    topics = settings.kafka.topics
    checks = {"kafka": lambda: broker.ping(timeout=2), "redis": lambda: _redis_ok(redis_client)}
    try:
        for topic in (topics.tasks, topics.tasks_high, *(topics.retry(tier) for tier in policy.tiers_s)):
            runtime.windows[topic] = SendWindow(broker, settings.kafka.publish_window)
        breaker = redis_breaker(
            settings.redis, "cancelled jobs' remaining items run", runtime.metrics.count_dependency_call
        )
        runtime.work = BatchWork(runner, CancellationFlags(redis_client, breaker), settings, tracer, runtime.metrics)
        async with serving_ops(settings.metrics_host, settings.metrics_port, runtime.metrics, checks):
            freeze_startup_objects()
            yield
    finally:
        await runner.close()
        await redis_client.aclose()


async def _redis_ok(client: object) -> bool:
    return bool(await client.ping())  # type: ignore[attr-defined]
