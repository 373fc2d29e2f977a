"""The dispatcher sleeps until the backlog changes: a job admitted or a credit returned wakes it at once, long
before its tick, over the real database and broker."""

from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest

from shared.config import FlowSettings, KafkaSettings
from shared.stores.backlog import return_credits
from tests.support.dispatching import admit, leading_dispatcher
from tests.support.poll import eventually

ASLEEP = FlowSettings(tick_s=10, housekeeping_interval_s=60)
WAKE_DEADLINE_S = 5.0
"""Shorter than the tick: only a wake-up releases a batch within it."""


@pytest.fixture
async def dispatcher(db: asyncpg.Pool, kafka_address: str, topic_prefix: str) -> AsyncIterator[None]:
    kafka = KafkaSettings(bootstrap_servers=kafka_address, topic_prefix=topic_prefix)
    async with leading_dispatcher(db, kafka, ASLEEP, {"max_in_flight_batches": 1}):
        yield


async def _released(db: asyncpg.Pool, job_id: UUID) -> list[int]:
    rows = await db.fetch(
        "SELECT batch_index FROM task_backlog WHERE job_id = $1 AND released_at IS NOT NULL ORDER BY 1", job_id
    )
    return [row[0] for row in rows]


@pytest.mark.usefixtures("dispatcher")
async def test_admitted_jobs_and_returned_credits_wake_the_dispatcher_before_its_tick(db):
    first_job = await admit(db, batches=2)  # the plan lets one batch be in flight: batch 1 waits for credit

    async def released(job_id: UUID, expected: list[int]) -> list[int] | None:
        return indexes if (indexes := await _released(db, job_id)) == expected else None

    await eventually(lambda: released(first_job, [0]), timeout=WAKE_DEADLINE_S)
    async with db.acquire() as connection, connection.transaction():
        await return_credits(connection, [(first_job, 0)])  # as the aggregator does when batch 0's results are in
    await eventually(lambda: released(first_job, [1]), timeout=WAKE_DEADLINE_S)
    async with db.acquire() as connection, connection.transaction():
        await return_credits(connection, [(first_job, 1)])

    second_job = await admit(db, batches=1)  # the dispatcher is asleep now: only the admission can wake it
    await eventually(lambda: released(second_job, [0]), timeout=WAKE_DEADLINE_S)
