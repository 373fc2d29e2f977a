"""Rebuild refuses a database it would corrupt, saying why, before reading any topic."""

from uuid import uuid4

import asyncpg
import pytest

from services.ops.streams.errors import OpsError
from services.ops.streams.rebuild import rebuild
from sluice.contracts.topics import TopicNames

UNREACHABLE_BROKER = "127.0.0.1:1"


async def test_rebuild_refuses_a_read_model_that_still_holds_results(db: asyncpg.Pool):
    job_id = uuid4()
    await db.execute(
        """INSERT INTO jobs (job_id, tenant, kind, source, total_items, total_batches)
           VALUES ($1, 't', 'k', 'rest', 1, 1)""",
        job_id,
    )
    await db.execute("INSERT INTO item_results (job_id, item_index, status) VALUES ($1, 0, 'succeeded')", job_id)

    with pytest.raises(OpsError, match="already holds 1 rows"):
        await rebuild(UNREACHABLE_BROKER, TopicNames.for_prefix("x"), db)


async def test_rebuild_names_a_results_table_dropped_on_its_own(db: asyncpg.Pool):
    await db.execute("DROP TABLE item_results")

    with pytest.raises(OpsError, match="item_results is missing"):
        await rebuild(UNREACHABLE_BROKER, TopicNames.for_prefix("x"), db)
