"""Scheduler: will emit rescan triggers (issue 'Scheduler'); for now it joins the stack and keeps time."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from faststream import FastStream

from services.scheduler.settings import SchedulerSettings
from shared.kafka import ensure_topics, make_broker
from shared.postgres import apply_migrations, open_pool
from shared.readiness import wait_for
from shared.telemetry import make_tracer_provider

log = logging.getLogger(__name__)


def build_app(settings: SchedulerSettings) -> FastStream:
    broker = make_broker(
        settings.kafka, client_id="sluice-scheduler", tracer_provider=make_tracer_provider(settings.otel, "scheduler")
    )
    return FastStream(broker, lifespan=lambda: _lifespan(settings))


@contextlib.asynccontextmanager
async def _lifespan(settings: SchedulerSettings) -> AsyncIterator[None]:
    await wait_for("kafka", lambda: ensure_topics(settings.kafka), settings.startup)
    pool = await wait_for("postgres", lambda: open_pool(settings.postgres), settings.startup)
    ticker = asyncio.create_task(_tick(settings.tick_interval_s))
    try:
        await apply_migrations(pool)
        log.info("scheduler ready; no watches are defined yet")
        yield
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        await pool.close()


async def _tick(interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        log.debug("scheduler tick: nothing due")
