"""The dispatcher: releases backlogged task batches into the tasks topic by priority and fair share.

Exactly one runs across intake replicas: each replica's task tries a session advisory lock on a pooled
connection and, holding it, leads; every statement goes over that connection, so losing it (crash, network)
releases the lock and ends the leadership together. A standby retries every ``leader_retry_s``.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import asyncpg
import orjson
from faststream.kafka import KafkaBroker
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Tracer

from services.intake.dispatch.fair_share import PRIORITY_ORDER, FairShare, QueueKey, Snapshot, TenantLimits
from services.intake.dispatch.placement import place
from services.intake.submission.admission import TenantLoad, promotions
from shared.config import FlowSettings
from shared.errors import DependencyUnavailable
from shared.failures import _per_kind_setting
from shared.kafka import SendWindow
from shared.metrics import SluiceMetrics
from shared.plans import Plan
from shared.postgres import CONNECTION_ERRORS
from shared.stores.admission import AdmissionStore
from shared.stores.backlog import BACKLOG_CHANNEL, BacklogCounts, BacklogStore, ReleasedBatch
from shared.tenant_plans import TenantPlans
from shared.tracing import span_context_of
from sluice.contracts.events import Priority
from sluice.contracts.headers import CANCELLED_HEADER, JOB_TRACE_HEADER
from sluice.contracts.topics import TopicNames

log = logging.getLogger(__name__)

LEADER_LOCK_ID = 0x51_1C_E0_07
"""Session advisory lock whose holder is the one dispatcher."""
CANCELLED_PER_HOUSEKEEPING = 2000
"""Batches of cancelled jobs released per housekeeping round (the rest go in the next rounds)."""


def kind_caps(raw: str) -> dict[str, int]:
    """SLUICE_FLOW_KIND_MAX_IN_FLIGHT, checked: a JSON object of kind → batches (≥ 1)."""
    parsed = _per_kind_setting(raw, "SLUICE_FLOW_KIND_MAX_IN_FLIGHT")
    caps: dict[str, int] = {}
    for kind, cap in parsed.items():
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise ValueError(f"SLUICE_FLOW_KIND_MAX_IN_FLIGHT[{kind!r}] must be an integer of at least 1")
        caps[kind] = int(cap)
    return caps


@dataclass
class Dispatcher:
    pool: asyncpg.Pool
    broker: KafkaBroker
    topics: TopicNames
    settings: FlowSettings
    plans: TenantPlans
    publish_window: int
    stall_timeout_s: float
    metrics: SluiceMetrics | None = None
    tracer: Tracer | None = None

    def __post_init__(self) -> None:
        self._reported_tenants: set[str] = set()
        self._caps = kind_caps(self.settings.kind_max_in_flight)
        self._backlog = BacklogStore()
        self._admissions = AdmissionStore(self.pool)
        self._turns: dict[str, int] = {}
        """Per topic, where the next release's ties start (placement.place)."""

    async def run_forever(self) -> None:
        """Lead when the lock is free; on a database or broker error, step down and try again later."""
        while True:
            try:
                async with self.pool.acquire() as connection:
                    if await connection.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK_ID):
                        log.info("this intake now runs the dispatcher")
                        try:
                            await self._lead(connection)
                        finally:
                            if self.metrics is not None:  # the next leader exports these: absent here, not frozen
                                self.metrics.clear_backlog()
                                self.metrics.clear_tenant_load()
                            self._reported_tenants = set()
                            if not connection.is_closed():
                                # The pool does not reset what a connection holds (shared/postgres.py): the
                                # leader lock and the LISTEN go here, or the connection is not given back.
                                await connection.reset()
            except (asyncpg.PostgresError, DependencyUnavailable, *CONNECTION_ERRORS) as exc:
                log.warning("dispatcher stepped down, retrying in %.1fs: %s: %s",
                            self.settings.leader_retry_s, type(exc).__name__, exc)  # fmt: skip
            except Exception:
                # A bug must not leave accepted jobs undispatched for good: say so loudly, step down, try again
                # (another replica may lead meanwhile). A failed tick at worst releases its batches again.
                log.exception("dispatcher failed; stepping down, retrying in %.1fs", self.settings.leader_retry_s)
            await asyncio.sleep(self.settings.leader_retry_s)

    async def _lead(self, connection: asyncpg.Connection) -> None:
        """Release until nothing can go, then sleep until the backlog changes (a job admitted, credit returned:
        BACKLOG_CHANNEL), housekeeping is due, or ``tick_s`` has passed, whichever comes first."""
        fair = FairShare(self.settings.window_batches, self._caps, self.settings.quantum_batches)
        # Everything the dispatcher writes is redone if a crash loses it (a batch released again, a waiting job
        # promoted again), so its commits need not wait for the WAL flush. Reset with the connection.
        await connection.execute("SET synchronous_commit TO off")
        changed = asyncio.Event()

        def on_change(*_: object) -> None:
            changed.set()

        await connection.add_listener(BACKLOG_CHANNEL, on_change)  # until run_forever resets the connection
        due = 0.0
        while True:
            changed.clear()  # before looking: a change made while we look wakes the next wait at once
            if time.monotonic() >= due:
                await self._housekeep(connection)
                due = time.monotonic() + self.settings.housekeeping_interval_s
            if not await self._release(connection, fair):
                pause = min(self.settings.tick_s, max(due - time.monotonic(), 0.0))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await changed.wait()

    async def _release(self, connection: asyncpg.Connection, fair: FairShare) -> int:
        """One tick: 1. count the backlog; 2. allocate; 3. read the granted batches; 4. publish each to the
        task partition with the fewest in flight (placement.py) and wait for the acks; 5. mark them released,
        with their partitions. A crash between 4 and 5 releases them again (at least once: the processors and
        the aggregator take duplicates)."""
        counts = await self._backlog.counts(connection)
        if self.metrics is not None:
            self.metrics.set_backlog(backlog_by_priority(counts))
        if not counts.queued:
            return 0
        tenants = {tenant for tenant, _, _ in counts.queued} | {tenant for tenant, _ in counts.in_flight}
        limits = {}
        for tenant in tenants:
            plan = await self.plans.plan_for(tenant)
            limits[tenant] = TenantLimits(plan.weight, plan.max_in_flight_batches)
        grants = fair.allocate(Snapshot(counts.queued, counts.in_flight), limits)
        if not grants:
            return 0
        ordered: list[tuple[QueueKey, int]] = sorted(grants.items(), key=lambda g: _class_rank(g[0]))
        batches = await self._backlog.take(connection, ordered)
        return await self._publish(connection, batches, counts.partition_load)

    async def _publish(
        self,
        connection: asyncpg.Connection,
        batches: list[ReleasedBatch],
        partition_load: Mapping[tuple[Priority, int], int],
        extra_headers: Mapping[str, str] | None = None,
    ) -> int:
        window = SendWindow(self.broker, self.publish_window, self.stall_timeout_s)
        try:
            partitions = await self._place(window, batches, partition_load)
            for batch, partition in zip(batches, partitions, strict=True):
                key = f"{batch.job_id}:{batch.batch_index}".encode()
                headers = {**orjson.loads(batch.headers), **(extra_headers or {})}
                with self._in_job_trace(batch, headers.get(JOB_TRACE_HEADER)):
                    await window.send(
                        batch.payload, self._topic(batch.priority), key=key, headers=headers, partition=partition
                    )
            await window.flush()
        except DependencyUnavailable:
            window.abandon()
            raise
        await self._backlog.mark_released(connection, batches, partitions)
        return len(batches)

    def _topic(self, priority: Priority) -> str:
        return self.topics.tasks_high if priority is Priority.HIGH else self.topics.tasks

    async def _place(
        self, window: SendWindow, batches: list[ReleasedBatch], partition_load: Mapping[tuple[Priority, int], int]
    ) -> list[int]:
        """Each batch's partition: the least loaded of its topic's, counting what is in flight there."""
        by_topic: dict[str, list[int]] = {}
        for i, batch in enumerate(batches):
            by_topic.setdefault(self._topic(batch.priority), []).append(i)
        placed = [0] * len(batches)
        for topic, indexes in by_topic.items():
            load: dict[int, int] = {}
            for (priority, partition), n in partition_load.items():
                if self._topic(priority) == topic:
                    load[partition] = load.get(partition, 0) + n
            start = self._turns.get(topic, 0)
            chosen = place(len(indexes), await window.partitions(topic), load, start)
            for i, partition in zip(indexes, chosen, strict=True):
                placed[i] = partition
            self._turns[topic] = start + len(indexes)
        return placed

    def _in_job_trace(self, batch: ReleasedBatch, root: str | None) -> AbstractContextManager[object]:
        """A span for the release, a child of the job's root span (the request that accepted it), so the
        batch's trace continues from the job's rather than from whichever tick released it."""
        root_context = span_context_of(root)
        if self.tracer is None or root_context is None:
            return nullcontext()
        return self.tracer.start_as_current_span(
            "dispatch task.batch",
            context=trace.set_span_in_context(NonRecordingSpan(root_context)),
            attributes={"sluice.job_id": str(batch.job_id), "sluice.batch_index": batch.batch_index},
        )

    async def _housekeep(self, connection: asyncpg.Connection) -> None:
        """Admit waiting jobs into freed slots, make their batches releasable, drop finished jobs' batches."""
        for tenant in await self._admissions.tenants_waiting(connection):
            plan = await self.plans.plan_for(tenant)

            def decide(active: int, waiting: int, plan: Plan = plan) -> int:
                return promotions(TenantLoad(active, waiting), plan)

            started = await self._admissions.promote_waiting(connection, tenant, decide)
            if started:
                log.info("tenant %s: %d waiting jobs admitted", tenant, started)
        await self._backlog.unhold(connection)
        await self._backlog.drop_finished(connection)
        if self.metrics is not None:
            await self._report_load(connection, self.metrics)
        if cancelled := await self._publish(
            connection,
            await self._backlog.take_cancelled(connection, CANCELLED_PER_HOUSEKEEPING),
            {},
            extra_headers={CANCELLED_HEADER: "1"},
        ):
            log.info("released %d batches of cancelled jobs for the processors to skip", cancelled)

    async def _report_load(self, connection: asyncpg.Connection, metrics: SluiceMetrics) -> None:
        """Per tenant: batches in flight fleet-wide and jobs waiting for a slot (0 once a tenant has none)."""
        in_flight: dict[str, int] = {}
        for (tenant, _kind), n in (await self._backlog.counts(connection)).in_flight.items():
            in_flight[tenant] = in_flight.get(tenant, 0) + n
        waiting = dict(
            await connection.fetch("SELECT tenant, count(*) FROM jobs WHERE status = 'waiting' GROUP BY tenant")
        )
        tenants = set(in_flight) | set(waiting)
        for tenant in tenants | self._reported_tenants:
            metrics.set_tenant_load(tenant, in_flight=in_flight.get(tenant, 0), waiting=waiting.get(tenant, 0))
        self._reported_tenants = tenants


def backlog_by_priority(counts: BacklogCounts) -> dict[str, int]:
    """Batches queued for release per priority, every priority listed (the sluice_backlog_batches gauge)."""
    batches = dict.fromkeys((priority.value for priority in PRIORITY_ORDER), 0)
    for (_tenant, priority, _kind), n in counts.queued.items():
        batches[priority.value] += n
    return batches


def _class_rank(key: QueueKey) -> int:
    return PRIORITY_ORDER.index(key[1])
