"""Aggregator: consumes the results topic, writes results and counters to Postgres, announces job events."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from opentelemetry import trace
from opentelemetry.trace import Tracer

from services.aggregator.changes import ChangeStep
from services.aggregator.dead_letters import DeadLetterIndexer
from services.aggregator.logic import ProgressThrottle
from services.aggregator.settings import AggregatorSettings
from services.aggregator.sink import ResultSink
from services.aggregator.webhooks import WebhookDispatcher, WebhookEnqueuer
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
from shared.postgres import apply_migrations, open_pool
from shared.readiness import wait_for
from shared.stores.changes import ChangeStore
from shared.stores.dead_letters import DeadLetterStore
from shared.stores.results import ResultStore
from shared.stores.webhooks import WebhookStore
from shared.telemetry import make_tracer_provider, tracing_enabled

log = logging.getLogger(__name__)
SWEEP_INTERVAL_S = 10.0
ANNOUNCE_GRACE_S = 5.0
"""The sweep leaves a job finished this recently to the poll that finished it, so it is not announced twice."""


@dataclass
class Runtime:
    """What the lifespan opens and the handler uses; one per app, never module-global."""

    sink: ResultSink | None = None
    dead_letters: DeadLetterIndexer | None = None
    webhooks: WebhookEnqueuer | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    metrics: SluiceMetrics = field(default_factory=SluiceMetrics)


def build_app(settings: AggregatorSettings) -> FastStream:
    tracer_provider = make_tracer_provider(settings.otel, "aggregator")
    broker = make_broker(settings.kafka, client_id="sluice-aggregator", tracer_provider=tracer_provider)
    runtime = Runtime()
    runtime.metrics.watch_lag(BrokerLag(broker).readings)
    register_handlers(broker, settings, runtime)
    tracer = tracer_provider.get_tracer("sluice.aggregator") if tracing_enabled(settings.otel) else None
    return FastStream(broker, lifespan=lambda: _lifespan(settings, broker, runtime, tracer))


def register_handlers(broker: KafkaBroker, settings: AggregatorSettings, runtime: Runtime) -> None:
    @broker.subscriber(
        settings.kafka.topics.results,
        batch=True,
        max_records=settings.messages_per_poll,
        batch_timeout_ms=50,
        # Big result messages (a kind with large batches) would otherwise make one write hold too many rows.
        fetch_max_bytes=settings.poll_max_bytes,
        max_partition_fetch_bytes=min(settings.poll_max_bytes, settings.kafka.max_request_bytes),
        group_id=settings.group_id,
        auto_offset_reset="earliest",
        # Offsets are committed only after the handler returns; an error seeks back and redelivers.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=undecoded,
        **group_options(settings.kafka, on_items_path=True),
    )
    async def on_results() -> None:
        assert runtime.sink is not None
        await runtime.sink.handle(polled_records(broker))

    @broker.subscriber(
        settings.kafka.topics.tasks_dlq,
        settings.kafka.topics.results_dlq,
        batch=True,
        max_records=settings.messages_per_poll,
        batch_timeout_ms=IDLE_POLL_TIMEOUT_MS,
        group_id=f"{settings.group_id}-dlq",
        auto_offset_reset="earliest",
        # Committed only once the poll is indexed in Postgres; an error seeks back and redelivers.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        **group_options(settings.kafka),
    )
    async def on_dead_letters() -> None:
        assert runtime.dead_letters is not None
        await runtime.dead_letters.handle(polled_records(broker))

    @broker.subscriber(
        settings.kafka.topics.job_events,
        batch=True,
        max_records=settings.messages_per_poll,
        batch_timeout_ms=IDLE_POLL_TIMEOUT_MS,
        group_id=f"{settings.group_id}-webhooks",
        auto_offset_reset="earliest",
        # Committed only once the poll's deliveries are in Postgres; an error seeks back and redelivers.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        **group_options(settings.kafka),
    )
    async def on_job_events() -> None:
        assert runtime.webhooks is not None
        await runtime.webhooks.handle(polled_records(broker))


@contextlib.asynccontextmanager
async def _lifespan(
    settings: AggregatorSettings, broker: KafkaBroker, runtime: Runtime, tracer: Tracer | None
) -> AsyncIterator[None]:
    await wait_for("kafka", lambda: ensure_topics(settings.kafka), settings.startup)
    pool = await wait_for("postgres", lambda: open_pool(settings.postgres), settings.startup)
    try:
        await apply_migrations(pool)
        store = ResultStore(pool)
        topics = settings.kafka.topics
        metrics = runtime.metrics
        runtime.dead_letters = DeadLetterIndexer(DeadLetterStore(pool), settings.kafka.topics, metrics)
        runtime.sink = ResultSink(
            store,
            SendWindow(broker, settings.kafka.publish_window),
            topics,
            ProgressThrottle(settings.progress_interval_s),
            write_attempts=settings.write_retry_attempts,
            changes=ChangeStep(ChangeStore(load_kinds())) if settings.detect_changes else None,
            tracer=tracer or trace.NoOpTracer(),
            traced=tracer is not None,
            metrics=metrics,
        )
        webhook_store = WebhookStore(pool)
        runtime.webhooks = WebhookEnqueuer(webhook_store)
        dispatcher = WebhookDispatcher(webhook_store, settings.webhook, metrics)
        sweeper = ResultSink(store, SendWindow(broker, settings.kafka.publish_window), topics, ProgressThrottle(0))
        runtime.tasks.append(asyncio.create_task(_sweep_forever(sweeper, broker)))
        runtime.tasks.append(asyncio.create_task(dispatcher.run_forever()))
        checks = {"kafka": lambda: broker.ping(timeout=2), "postgres": lambda: _postgres_ok(pool)}
        async with serving_ops(settings.metrics_host, settings.metrics_port, metrics, checks):
            freeze_startup_objects()
            yield
    finally:
        for task in runtime.tasks:
            task.cancel()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        await pool.close()


async def _postgres_ok(pool: asyncpg.Pool) -> bool:
    return await pool.fetchval("SELECT 1", timeout=2) == 1


async def _sweep_forever(sweeper: ResultSink, broker: KafkaBroker) -> None:
    """Re-announce lifecycle events a crash left unpublished (also catches jobs intake failed)."""
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        if not broker.running:
            continue
        try:
            announced = await sweeper.sweep_unannounced(finished_s_ago=ANNOUNCE_GRACE_S)
        except Exception as exc:  # the next sweep retries; the handler path is unaffected
            log.warning("lifecycle sweep failed, retrying in %.0fs: %s", SWEEP_INTERVAL_S, exc)
            continue
        if announced:
            log.info("announced %d lifecycle events left over", announced)
