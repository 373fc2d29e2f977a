"""Scheduler: sweeps jobs on a timer: per-job deadlines, stall detection and result retention."""

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from faststream import FastStream
from faststream.kafka import KafkaBroker

from services.scheduler.app_rescans import TriggerSlot, register_trigger_handler, start_rescans
from services.scheduler.logic import SweepPolicy, retention_cutoff, sweep_summary
from services.scheduler.metrics import FleetGauges
from services.scheduler.settings import SchedulerSettings
from shared.heap import freeze_startup_objects
from shared.kafka import ensure_topics, make_broker
from shared.metrics import SluiceMetrics
from shared.ops_server import serving_ops
from shared.postgres import CONNECTION_ERRORS, apply_migrations, open_pool
from shared.readiness import wait_for
from shared.records import PurgeOutcome, SweepOutcome
from shared.stores.sweeps import SweepStore
from shared.telemetry import make_tracer_provider
from sluice.contracts.events import utc_now

log = logging.getLogger(__name__)


def build_app(settings: SchedulerSettings) -> FastStream:
    broker = make_broker(
        settings.kafka, client_id="sluice-scheduler", tracer_provider=make_tracer_provider(settings.otel, "scheduler")
    )
    triggers = TriggerSlot()
    register_trigger_handler(broker, settings, triggers)
    return FastStream(broker, lifespan=lambda: _lifespan(settings, broker, triggers))


def policy_from(settings: SchedulerSettings) -> SweepPolicy:
    return SweepPolicy(
        job_timeout_s=settings.job_timeout_s,
        stall_window_s=settings.stall_window_s,
        retention_days=settings.result_retention_days,
        purge_chunk_rows=settings.purge_chunk_rows,
    )


@dataclass
class Sweeper:
    """One sweep: deadlines and stalls (one transaction), then the retention purge; logs what changed."""

    store: SweepStore
    policy: SweepPolicy

    async def run_once(self, now: datetime) -> tuple[SweepOutcome, PurgeOutcome]:
        outcome = await self.store.sweep(
            now, default_timeout_s=self.policy.job_timeout_s, stall_window_s=self.policy.stall_window_s
        )
        for job in outcome.timed_out:
            log.info("job %s (tenant %s) %s; now %s", job.job_id, job.tenant, job.error, job.status)
        for stalled in outcome.newly_stalled:
            log.warning(
                "job %s (tenant %s) stalled: no result since %s",
                stalled.job_id, stalled.tenant, stalled.last_progress_at or "it started",
            )  # fmt: skip
        purged = await self.store.purge_finished(
            retention_cutoff(now, self.policy.retention_days), chunk=self.policy.purge_chunk_rows
        )
        if summary := sweep_summary(outcome, purged):
            log.info("sweep: %s; %d jobs stalled now", summary, await self.store.stalled_count())
        return outcome, purged


@contextlib.asynccontextmanager
async def _lifespan(settings: SchedulerSettings, broker: KafkaBroker, triggers: TriggerSlot) -> AsyncIterator[None]:
    await wait_for("kafka", lambda: ensure_topics(settings.kafka), settings.startup)
    pool = await wait_for("postgres", lambda: open_pool(settings.postgres), settings.startup)
    sweeps: asyncio.Task[None] | None = None
    rescans: asyncio.Task[None] | None = None
    exporting: asyncio.Task[None] | None = None
    metrics = SluiceMetrics()
    try:
        await apply_migrations(pool)
        sweeper = Sweeper(SweepStore(pool), policy_from(settings))
        sweeps = asyncio.create_task(_sweep_forever(sweeper, settings.sweep_interval_s))
        sweeps.add_done_callback(functools.partial(_report_crash, "the sweep loop"))
        gauges = FleetGauges(pool, metrics, settings.sweep_interval_s)
        exporting = asyncio.create_task(gauges.run_forever())
        exporting.add_done_callback(functools.partial(_report_crash, "the fleet-wide gauges' loop"))
        rescans = start_rescans(settings, broker, pool, triggers, gauges)
        log.info(
            "scheduler ready; sweeping every %.1fs (default job timeout %.0fs, stall window %.0fs, retention %g days)",
            settings.sweep_interval_s, settings.job_timeout_s, settings.stall_window_s,
            settings.result_retention_days,
        )  # fmt: skip
        checks = {"kafka": lambda: broker.ping(timeout=2), "postgres": lambda: _postgres_ok(pool)}
        async with serving_ops(settings.metrics_host, settings.metrics_port, metrics, checks):
            freeze_startup_objects()
            yield
    finally:
        for task in (sweeps, rescans, exporting):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await pool.close()


async def _postgres_ok(pool: asyncpg.Pool) -> bool:
    return await pool.fetchval("SELECT 1", timeout=2) == 1


async def _sweep_forever(sweeper: Sweeper, interval_s: float) -> None:
    """Sweep, then wait; a database error skips one sweep (each is idempotent), anything else ends the loop."""
    while True:
        try:
            await sweeper.run_once(utc_now())
        except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
            log.warning("sweep failed, retrying in %.1fs: %s: %s", interval_s, type(exc).__name__, exc)
        await asyncio.sleep(interval_s)


def _report_crash(loop: str, task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s stopped; restart the scheduler", loop, exc_info=exc)
