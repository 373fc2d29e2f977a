"""The scheduler's rescan loop: plan what is due on its clock, publish the outbox, keep the statistics.

It never runs work itself: each decided rescan becomes a RescanRequested on the requests topic, which
intake accepts like any job (limits, fair share and priorities apply).
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker

from services.scheduler.clock import Clock
from services.scheduler.metrics import FleetGauges
from services.scheduler.settings import RescanSettings
from shared.kafka import SendWindow, error_headers
from shared.stores.rescans import PendingRescan, RescanStore
from shared.stores.watch_stats import WatchStatsStore
from sluice.contracts.events import Priority, RescanReason, RescanRequested, decode, rescan_trigger
from sluice.contracts.topics import TopicNames

log = logging.getLogger(__name__)


def rescan_request(pending: PendingRescan) -> RescanRequested:
    """The event for one outbox row; its job id is the trigger id, so a re-publish is accepted once."""
    return RescanRequested(
        tenant=pending.tenant,
        job_id=pending.trigger_id,
        kind=pending.kind,
        items=pending.items,
        options=pending.options,
        priority=Priority(pending.priority),
        watch_id=pending.watch_id,
        reason=RescanReason(pending.reason),
    )


@dataclass
class RescanScheduler:
    store: RescanStore
    stats: WatchStatsStore
    broker: KafkaBroker
    topics: TopicNames
    clock: Clock
    settings: RescanSettings
    publish_window: int = 256
    gauges: FleetGauges | None = None
    _last_stats: float = field(default=float("-inf"), init=False)
    _logged_stats: dict[str, tuple[object, ...]] = field(default_factory=dict, init=False)

    async def tick(self) -> int:
        """One planning round: decide what is due now, then publish every decided rescan. Returns rescans sent."""
        now = self.clock.now()
        limit, per_trigger = self.settings.batch_items, self.settings.max_items_per_trigger
        await self.store.stamp_watched_since(now)
        while await self.store.plan_scheduled(now, limit, per_trigger) == limit:
            pass  # more were due than one transaction takes
        while await self.store.plan_triggered(now, limit, per_trigger) == limit:
            pass
        for decision in await self.store.decide_samples(now, limit, per_trigger):
            log.info(
                "watch %s: sample of %d, %d reported, %d changed: %s",
                decision.watch_id, decision.tally.sampled, decision.tally.reported, decision.tally.changed,
                "escalating to the whole group" if decision.escalated else "no escalation",
            )  # fmt: skip
        await self.store.start_samples(now, limit, per_trigger)
        sent = 0
        while emitted := await self.store.emit_pending(self._publish, now, self.settings.emit_batch):
            sent += emitted
        if time.monotonic() - self._last_stats >= self.settings.stats_interval_s:
            self._last_stats = time.monotonic()
            rows = await self.stats.refresh(now, timedelta(days=self.settings.history_days))
            if self.gauges is not None:
                self.gauges.update_rescan_stats(rows)
            for row in rows:
                summary = tuple(row)
                if self._logged_stats.get(row["tenant"]) == summary[1:-1]:
                    continue  # unchanged since the last line
                self._logged_stats[row["tenant"]] = summary[1:-1]
                log.info(
                    "rescan stats: tenant %s watches %d items, %d due in the next hour, %d in the next day; "
                    "%d scans issued, %d saved against a daily rescan",
                    row["tenant"], row["watched_items"], row["due_next_hour"], row["due_next_day"],
                    row["scans_issued"], row["daily_equivalent"] - row["scans_issued"],
                )  # fmt: skip
        return sent

    async def _publish(self, pending: list[PendingRescan]) -> None:
        window = SendWindow(self.broker, self.publish_window)
        try:
            for rescan in pending:
                event = rescan_request(rescan)
                await window.send(
                    event.model_dump_json().encode(), self.topics.requests, key=str(event.job_id).encode()
                )
            await window.flush()
        except BaseException:
            window.abandon()
            raise
        for rescan in pending:
            log.info("rescan %s of watch %s (%s, %d items) sent", rescan.trigger_id, rescan.watch_id,
                     rescan.reason, len(rescan.items))  # fmt: skip


@dataclass
class TriggerHandler:
    """Consumes ``<prefix>.triggers``: matching watched items fall due after their watch's debounce window."""

    store: RescanStore
    broker: KafkaBroker
    topics: TopicNames
    clock: Clock

    async def handle(self, record: ConsumerRecord) -> None:
        """An invalid trigger goes to the rejected topic with the reason; a database error raises (redelivery)."""
        try:
            trigger = decode(rescan_trigger, record.value, "RescanTrigger event")
        except ValueError as exc:
            log.warning("rejected a trigger at %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc)
            window = SendWindow(self.broker, 1)
            await window.send(
                record.value or b"", self.topics.rejected, key=record.key, headers=error_headers(str(exc), record.topic)
            )
            await window.flush()
            return
        matched = await self.store.note_trigger(trigger.tenant, trigger.keys, trigger.tags, self.clock.now())
        log.info("trigger %s (tenant %s) matched %d watched items", trigger.event_id, trigger.tenant, matched)
