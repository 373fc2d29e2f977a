"""Intake: the REST API and the Kafka front door, in one FastAPI app whose lifespan owns every connection."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Response
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.intake.dispatch.dispatcher import Dispatcher
from services.intake.http import asyncapi, dashboard, dead_letters, jobs, listing, live, watches
from services.intake.http.auth import install_rate_limit_headers
from services.intake.http.errors import install_error_handlers
from services.intake.http.fast_submit import install_submit_lane
from services.intake.http.tracing import HttpTracing
from services.intake.live.hub import JobEventHub
from services.intake.runtime import IntakeRuntime
from services.intake.settings import IntakeSettings
from services.intake.submission.accept import JobAcceptor
from services.intake.submission.front_door import on_job_requested
from services.intake.tenancy.keys import KeyCache, listening_connection
from services.intake.tenancy.rate_limit import RateLimiter
from shared.heap import freeze_startup_objects
from shared.kafka import ensure_topics, group_options, make_broker
from shared.kinds import load_kinds
from shared.metrics import SluiceMetrics
from shared.ops_server import PROMETHEUS_CONTENT_TYPE
from shared.postgres import apply_migrations, open_pool
from shared.readiness import wait_for
from shared.redis import CancellationFlags, open_redis, redis_breaker
from shared.stores.admission import AdmissionStore
from shared.stores.jobs import JobStore
from shared.stores.tenants import TenantStore
from shared.telemetry import make_tracer_provider, tracing_enabled
from shared.tenant_plans import TenantPlans

log = logging.getLogger(__name__)


def build_app(settings: IntakeSettings) -> FastAPI:
    tracer_provider = make_tracer_provider(settings.otel, "intake")
    broker = make_broker(settings.kafka, client_id="sluice-intake", tracer_provider=tracer_provider)
    metrics = SluiceMetrics()
    app = FastAPI(title="Sluice intake", version="2", lifespan=lambda app: _lifespan(app, settings, broker, metrics))
    for routes in (jobs, dead_letters, listing, asyncapi, watches, live, dashboard):
        app.include_router(routes.router)
    traced = tracing_enabled(settings.otel)
    app.state.tracer = tracer_provider.get_tracer("sluice.intake") if traced else None
    if traced:  # the request's span is the job's root span; with nothing exported it would only cost
        app.add_middleware(HttpTracing, tracer=app.state.tracer)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    install_error_handlers(app)
    install_rate_limit_headers(app)
    install_submit_lane(app)
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
async def _lifespan(
    app: FastAPI, settings: IntakeSettings, broker: KafkaBroker, metrics: SluiceMetrics
) -> AsyncIterator[None]:
    kinds = load_kinds()
    await wait_for("kafka", lambda: ensure_topics(settings.kafka), settings.startup)
    pool = await wait_for("postgres", lambda: open_pool(settings.postgres), settings.startup)
    redis_client = open_redis(settings.redis)
    breaker = redis_breaker(
        settings.redis,
        "rate limits are not enforced and cancellations are not flagged to processors",
        metrics.count_dependency_call,
    )
    hub = JobEventHub(settings.kafka, client_id="sluice-intake-live")
    dispatching: asyncio.Task[None] | None = None
    listening: asyncio.Task[None] | None = None
    try:
        await apply_migrations(pool)
        store = JobStore(pool)
        tenants = TenantStore(pool)
        keys = KeyCache(tenants)
        listening = asyncio.create_task(keys.listen(lambda: listening_connection(settings.postgres.url)))
        plans = TenantPlans(tenants, settings.tenancy)
        admissions = AdmissionStore(pool)
        acceptor = JobAcceptor(
            admissions=admissions,
            plans=plans,
            broker=broker,
            batch_size=settings.batch_size,
            stall_timeout_s=settings.publish_stall_timeout_s,
            waiting_full_retry_after_s=settings.flow.waiting_full_retry_after_s,
            kind_batch_sizes={name: kind.batch_size for name, kind in kinds.items() if kind.batch_size},
            broker_check_ttl_s=settings.broker_check_ttl_s,
            admission_group_max=settings.admission_group_max,
        )
        app.state.runtime = IntakeRuntime(
            settings, kinds, broker, pool, redis_client, store, acceptor, CancellationFlags(redis_client, breaker),
            tenants=tenants,
            plans=plans,
            rate_limiter=RateLimiter(redis_client, breaker, namespace=settings.kafka.topic_prefix),
            hub=hub, metrics=metrics, admissions=admissions, keys=keys,
        )  # fmt: skip
        metrics.watch_sse_clients(hub.client_count)
        await hub.start()
        await broker.start()
        if settings.flow.dispatcher_enabled:
            dispatcher = Dispatcher(
                pool, broker, settings.kafka.topics, settings.flow, plans,
                settings.kafka.publish_window, settings.publish_stall_timeout_s, metrics, app.state.tracer,
            )  # fmt: skip
            dispatching = asyncio.create_task(dispatcher.run_forever())
        log.info("intake ready on %s:%d (kinds: %s)", settings.host, settings.port, ", ".join(sorted(kinds)))
        freeze_startup_objects()
        yield
    finally:
        for task in (dispatching, listening):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await broker.stop()
        await hub.stop()
        await redis_client.aclose()
        await pool.close()
