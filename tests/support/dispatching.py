"""A real dispatcher over the test's database and broker, and jobs admitted straight into its backlog."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
from opentelemetry.sdk.trace import TracerProvider
from pydantic import JsonValue

from services.intake.dispatch.dispatcher import LEADER_LOCK_ID, Dispatcher
from shared.config import FlowSettings, KafkaSettings
from shared.kafka import ensure_topics, make_broker
from shared.plans import TenancySettings
from shared.stores.admission import AdmissionStore
from shared.stores.tenants import TenantStore
from shared.tenant_plans import TenantPlans
from sluice.contracts.events import JobStatus
from tests.support.jobs import new_job
from tests.support.poll import eventually


@contextlib.asynccontextmanager
async def leading_dispatcher(
    db: asyncpg.Pool, kafka: KafkaSettings, flow: FlowSettings, plan: dict[str, JsonValue]
) -> AsyncIterator[None]:
    """A dispatcher holding the leader lock, with ``plan`` as every tenant's default."""
    await ensure_topics(kafka)
    broker = make_broker(kafka, client_id="test-dispatcher", tracer_provider=TracerProvider())
    await broker.connect()
    plans = TenantPlans(TenantStore(db), TenancySettings(defaults=plan))
    task = asyncio.create_task(Dispatcher(db, broker, kafka.topics, flow, plans, 64, 10.0).run_forever())

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


async def admit(db: asyncpg.Pool, batches: int) -> UUID:
    """A queued job of ``batches`` one-item batches, in the backlog as intake leaves it."""
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
