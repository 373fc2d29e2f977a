"""Wiring of the rescan side into the scheduler app: the triggers subscriber and the planning loop."""

import asyncio
import logging
from dataclasses import dataclass

import asyncpg
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.scheduler.clock import ClockUnreadable, clock_from
from services.scheduler.metrics import FleetGauges
from services.scheduler.rescans import RescanScheduler, TriggerHandler
from services.scheduler.settings import SchedulerSettings
from shared.errors import BrokerUnavailable
from shared.kafka import group_options
from shared.postgres import CONNECTION_ERRORS
from shared.stores.rescans import RescanStore
from shared.stores.watch_stats import WatchStatsStore

log = logging.getLogger(__name__)


@dataclass
class TriggerSlot:
    """Holds the trigger handler the lifespan builds, for the subscriber registered before it."""

    handler: TriggerHandler | None = None


def register_trigger_handler(broker: KafkaBroker, settings: SchedulerSettings, slot: TriggerSlot) -> None:
    @broker.subscriber(
        settings.kafka.topics.triggers,
        group_id=settings.rescan.triggers_group_id,
        auto_offset_reset="earliest",
        # Committed only once the matching items are marked due; an error seeks back and redelivers.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        **group_options(settings.kafka),
    )
    async def on_trigger(message: KafkaMessage) -> None:
        assert slot.handler is not None
        await slot.handler.handle(message.raw_message)


def start_rescans(
    settings: SchedulerSettings, broker: KafkaBroker, pool: asyncpg.Pool, slot: TriggerSlot, gauges: FleetGauges
) -> "asyncio.Task[None]":
    clock = clock_from(settings.rescan.clock_file)
    store = RescanStore(pool)
    topics = settings.kafka.topics
    slot.handler = TriggerHandler(store, broker, topics, clock)
    scheduler = RescanScheduler(
        store, WatchStatsStore(pool), broker, topics, clock, settings.rescan, settings.kafka.publish_window, gauges
    )
    task = asyncio.create_task(_rescan_forever(scheduler, broker, settings.rescan.tick_s))
    task.add_done_callback(_report_crash)
    return task


async def _rescan_forever(scheduler: RescanScheduler, broker: KafkaBroker, tick_s: float) -> None:
    """Plan and emit, then wait; a database, broker or clock failure skips one round (each is idempotent)."""
    while True:
        if broker.running:
            try:
                await scheduler.tick()
            except (asyncpg.PostgresError, BrokerUnavailable, ClockUnreadable, *CONNECTION_ERRORS) as exc:
                log.warning("rescan round failed, retrying in %.1fs: %s: %s", tick_s, type(exc).__name__, exc)
        await asyncio.sleep(tick_s)


def _report_crash(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("the rescan loop stopped; restart the scheduler", exc_info=exc)
