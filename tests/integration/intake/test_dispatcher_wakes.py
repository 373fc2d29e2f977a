"""The dispatcher sleeps until the backlog changes: a job admitted or a credit returned wakes it at once, long
before its tick, over the real database and broker."""

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider

from services.intake.dispatcher import LEADER_LOCK_ID, Dispatcher
from shared.config import FlowSettings, KafkaSettings
from shared.events import JobStatus
from shared.kafka import ensure_topics, make_broker
from shared.plans import TenancySettings
from shared.stores.admission import AdmissionStore
from shared.stores.backlog import return_credits
from shared.stores.tenants import TenantStore
from shared.tenant_plans import TenantPlans
from tests.integration.stores.conftest import new_job
from tests.support.poll import eventually

ASLEEP = FlowSettings(tick_s=10, housekeeping_interval_s=60)
WAKE_DEADLINE_S = 5.0
"""Shorter than the tick: only a wake-up releases a batch within it."""


@pytest.fixture
async def dispatcher(db: asyncpg.Pool, kafka_address: str, topic_prefix: str) -> AsyncIterator[None]:
    kafka = KafkaSettings(bootstrap_servers=kafka_address, topic_prefix=topic_prefix)
    await ensure_topics(kafka)
    broker = make_broker(kafka, client_id="test-dispatcher", tracer_provider=TracerProvider())
    await broker.connect()
    plans = TenantPlans(TenantStore(db), TenancySettings(defaults={"max_in_flight_batches": 1}))
    task = asyncio.create_task(Dispatcher(db, broker, kafka.topics, ASLEEP, plans, 64, 10.0).run_forever())

    async def leading() -> bool | None:
        held = await db.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1",
                                 LEADER_LOCK_ID)  # fmt: skip
        return True if held else None

    await eventually(leading, timeout=10)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await broker.stop()


async def _released(db: asyncpg.Pool, job_id: UUID) -> list[int]:
    rows = await db.fetch(
        "SELECT batch_index FROM task_backlog WHERE job_id = $1 AND released_at IS NOT NULL ORDER BY 1", job_id
    )
    return [row[0] for row in rows]


async def _admit(db: asyncpg.Pool, batches: int) -> UUID:
    job = new_job(total_items=batches, batch_size=1)
    outcome = await AdmissionStore(db).register(
        job,
        decide=lambda active, waiting: JobStatus.QUEUED,
        backlog=lambda status: [
            (job.job_id, i, job.tenant, job.priority.value, job.kind, 1, False, b"{}", b"{}") for i in range(batches)
        ],
    )
    assert outcome.job.job_id == job.job_id
    return job.job_id


@pytest.mark.usefixtures("dispatcher")
async def test_admitted_jobs_and_returned_credits_wake_the_dispatcher_before_its_tick(db):
    first_job = await _admit(db, batches=2)  # the plan lets one batch be in flight: batch 1 waits for credit

    async def released(job_id: UUID, expected: list[int]) -> list[int] | None:
        return indexes if (indexes := await _released(db, job_id)) == expected else None

    await eventually(lambda: released(first_job, [0]), timeout=WAKE_DEADLINE_S)
    async with db.acquire() as connection, connection.transaction():
        await return_credits(connection, [(first_job, 0)])  # as the aggregator does when batch 0's results are in
    await eventually(lambda: released(first_job, [1]), timeout=WAKE_DEADLINE_S)
    async with db.acquire() as connection, connection.transaction():
        await return_credits(connection, [(first_job, 1)])

    second_job = await _admit(db, batches=1)  # the dispatcher is asleep now: only the admission can wake it
    await eventually(lambda: released(second_job, [0]), timeout=WAKE_DEADLINE_S)
