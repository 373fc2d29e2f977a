"""Fair share: how the dispatcher shares the in-flight window between two backlogged tenants, by weight.

A figure, not a check: tests/e2e/test_fairness.py checks one release round exactly; this reports the share of
releases over a whole run of a loaded pipeline, where the window frees a few batches at a time.
"""

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import httpx
from pydantic import JsonValue

from bench import jobs
from shared.config import FlowSettings
from shared.stores.tenants import TenantStore

BATCH_ITEMS = 10
"""bench.noop items per batch (each tenant's plan's max_batch_size): the share is of batches, which cost the
pipeline about the same whatever their size, so small ones make many releases for little work."""
SAMPLE_S = 0.02


@dataclass(frozen=True)
class Share:
    weights: tuple[int, int]
    """Plan weights of tenant A (queued first) and tenant B."""
    batches: int
    """Batches of each tenant's job."""
    releases: int
    """Batches released from the moment B queued its job until either tenant had none left to release."""
    b_share: float | None
    """B's share of those releases (None without any); weight alone would give B weights[1] / sum(weights)."""
    seconds: float
    """How long both tenants had batches to release."""


async def _released_and_queued(pool: asyncpg.Pool, job_ids: Sequence[str]) -> list[tuple[int, int]]:
    """Per job, in order: batches released so far (in flight or done) and batches still queued."""
    rows = await pool.fetch(
        """SELECT j.job_id::text AS job_id, j.total_batches,
                  count(b.batch_index) FILTER (WHERE b.released_at IS NULL) AS queued
           FROM jobs j LEFT JOIN task_backlog b ON b.job_id = j.job_id
           WHERE j.job_id = ANY($1::uuid[]) GROUP BY 1, 2""",
        list(job_ids),
    )
    by_job = {row["job_id"]: (row["total_batches"] - row["queued"], row["queued"]) for row in rows}
    return [by_job[job_id] for job_id in job_ids]


async def _client(base: httpx.AsyncClient, pool: asyncpg.Pool, weight: int, window: int) -> httpx.AsyncClient:
    """A client of a new tenant whose plan lets the window, not its own cap, bound what it has in flight."""
    plan: dict[str, JsonValue] = {
        "weight": weight, "max_in_flight_batches": window, "max_batch_size": BATCH_ITEMS,
        "requests_per_minute": 1_000_000, "max_items_per_job": 100_000_000,
    }  # fmt: skip
    key = (await TenantStore(pool).key_for(f"bench-fair-{uuid.uuid4().hex[:8]}", plan)).token
    return httpx.AsyncClient(
        base_url=base.base_url, timeout=base.timeout, trust_env=False, headers={"Authorization": f"Bearer {key}"}
    )


async def share(
    base: httpx.AsyncClient, pool: asyncpg.Pool, weights: tuple[int, int], batches: int, timeout: float
) -> Share:
    """1. Tenant A queues a job of ``batches`` (more than the window) and fills the window: what the dispatcher
    released before B had a backlog is not shared; 2. tenant B queues the same; 3. sample both jobs' released
    counts until either has nothing left to release; 4. wait until both complete, so the next scenario starts on
    an idle pipeline."""
    window = FlowSettings().window_batches
    a, b = [await _client(base, pool, weight, window) for weight in weights]
    try:
        a_job = (await jobs.upload_ndjson(a, "bench.noop", batches * BATCH_ITEMS)).job_id
        async with asyncio.timeout(timeout):
            while (await _released_and_queued(pool, [a_job]))[0][0] < window:
                await asyncio.sleep(SAMPLE_S)  # poll interval inside the deadline
        b_job = (await jobs.upload_ndjson(b, "bench.noop", batches * BATCH_ITEMS)).job_id
        job_ids = [a_job, b_job]
        start, started_at = await _released_and_queued(pool, job_ids), time.monotonic()
        last, last_at = start, started_at
        async with asyncio.timeout(timeout):
            while True:
                sample = await _released_and_queued(pool, job_ids)
                if not all(queued for _, queued in sample):
                    break
                last, last_at = sample, time.monotonic()
                await asyncio.sleep(SAMPLE_S)  # sampling interval inside the deadline
        await jobs.wait_until_finished(pool, job_ids, timeout)
    finally:
        await a.aclose()
        await b.aclose()
    a_released, b_released = (last[i][0] - start[i][0] for i in range(2))
    released = a_released + b_released
    return Share(
        weights=weights,
        batches=batches,
        releases=released,
        b_share=round(b_released / released, 3) if released else None,
        seconds=round(last_at - started_at, 2),
    )
