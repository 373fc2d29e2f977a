"""Intake: the REST API and the Kafka front door, in one FastAPI app whose lifespan owns every connection."""

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.intake import admin
from services.intake.accept import JobAcceptor
from services.intake.api import router
from services.intake.errors import install_error_handlers
from services.intake.front_door import on_job_requested
from services.intake.runtime import IntakeRuntime
from services.intake.settings import IntakeSettings
from shared.kafka import ensure_topics, group_options, make_broker
from shared.kinds import load_kinds
from shared.postgres import apply_migrations, open_pool
from shared.readiness import wait_for
from shared.redis import CancellationFlags, open_redis
from shared.stores.jobs import JobStore
from shared.telemetry import make_tracer_provider

log = logging.getLogger(__name__)


def build_app(settings: IntakeSettings) -> FastAPI:
    broker = make_broker(
        settings.kafka, client_id="sluice-intake", tracer_provider=make_tracer_provider(settings.otel, "intake")
    )
    app = FastAPI(title="Sluice intake", version="1", lifespan=lambda app: _lifespan(app, settings, broker))
    app.include_router(router)
    app.include_router(admin.router)
    install_error_handlers(app)
    _register_front_door(broker, app, settings)
    return app


def _register_front_door(broker: KafkaBroker, app: FastAPI, settings: IntakeSettings) -> None:
    @broker.subscriber(
        settings.kafka.topics.requests,
        group_id=settings.requests_group_id,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=settings.kafka.max_request_bytes,
        # Committed only once the job's batches are acknowledged (or the request is on the rejected topic).
        ack_policy=AckPolicy.NACK_ON_ERROR,
        **group_options(settings.kafka),
    )
    async def on_request(message: KafkaMessage) -> None:
        await on_job_requested(app.state.runtime, message.raw_message)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI, settings: IntakeSettings, broker: KafkaBroker) -> AsyncIterator[None]:
    kinds = load_kinds()
    await wait_for("kafka", lambda: ensure_topics(settings.kafka), settings.startup)
    pool = await wait_for("postgres", lambda: open_pool(settings.postgres), settings.startup)
    redis_client = open_redis(settings.redis)
    try:
        await apply_migrations(pool)
        store = JobStore(pool)
        acceptor = JobAcceptor(
            store=store,
            broker=broker,
            topics=settings.kafka.topics,
            batch_size=settings.batch_size,
            publish_window=settings.kafka.publish_window,
            stall_timeout_s=settings.publish_stall_timeout_s,
            kind_batch_sizes={name: kind.batch_size for name, kind in kinds.items() if kind.batch_size},
        )
        app.state.runtime = IntakeRuntime(
            settings, kinds, broker, pool, redis_client, store, acceptor, CancellationFlags(redis_client)
        )
        await broker.start()
        log.info("intake ready on %s:%d (kinds: %s)", settings.host, settings.port, ", ".join(sorted(kinds)))
        yield
    finally:
        await broker.stop()
        await redis_client.aclose()
        await pool.close()
