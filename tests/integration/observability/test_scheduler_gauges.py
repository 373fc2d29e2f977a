"""The scheduler's fleet-wide gauges come from one replica, over real Postgres and real /metrics endpoints: two
replicas together report each job status once, and a replica that loses the lock stops reporting (absent, not
frozen) while the other takes over."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.ops.devstack.ports import free_port
from services.scheduler.metrics import GAUGES_LOCK_ID, FleetGauges
from shared.config import PostgresSettings
from shared.metrics import SluiceMetrics
from shared.ops_server import serving_ops
from shared.postgres import open_pool
from shared.stores.jobs import JobStore
from tests.integration.observability.leadership import lock_taken_from_holder
from tests.support.dispatching import admit
from tests.support.jobs import new_job
from tests.support.poll import eventually

INTERVAL_S = 0.05
Reported = dict[str, float]
"""One replica's job gauges: status → jobs, and "stalled" → sluice_jobs_stalled."""


@contextlib.asynccontextmanager
async def scheduler_replica(database_url: str) -> AsyncIterator[str]:
    """A replica's fleet gauges on a pool of its own, served on /metrics; yields that URL."""
    pool = await open_pool(PostgresSettings(url=database_url))
    metrics = SluiceMetrics()
    exporting = asyncio.create_task(FleetGauges(pool, metrics, INTERVAL_S).run_forever())
    try:
        async with serving_ops("127.0.0.1", free_port(), metrics, {}) as port:
            yield f"http://127.0.0.1:{port}/metrics"
    finally:
        exporting.cancel()
        await asyncio.gather(exporting, return_exceptions=True)
        await pool.close()


async def _reported(client: httpx.AsyncClient, url: str) -> Reported:
    text = (await client.get(url)).text
    reported = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sluice_jobs":
                reported[sample.labels["status"]] = sample.value
            elif sample.name == "sluice_jobs_stalled":
                reported["stalled"] = sample.value
    return reported


async def _jobs_in_several_statuses(db: asyncpg.Pool) -> dict[str, float]:
    """Jobs as intake leaves them (accepted, failed to publish, queued); returns what the gauges should say."""
    store = JobStore(db)
    for job in (new_job(), new_job(tenant="globex")):
        await store.create(job)
    await store.mark_rejected(job.job_id, "the broker refused it")
    await admit(db, batches=2)
    rows = await db.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
    expected = {row["status"]: float(row["n"]) for row in rows}
    assert len(expected) >= 2, expected
    return {**expected, "stalled": 0.0}


async def _one_replica_reports(client: httpx.AsyncClient, urls: list[str], expected: Reported) -> list[Reported] | None:
    """Every replica's report, once together they say ``expected``; each status from one replica only."""
    reports = [await _reported(client, url) for url in urls]
    together: Reported = {}
    for report in reports:
        for key, value in report.items():
            together[key] = together.get(key, 0.0) + value
    return reports if together == expected else None


async def test_two_replicas_metrics_together_report_each_job_status_once(db: asyncpg.Pool, database_url: str) -> None:
    expected = await _jobs_in_several_statuses(db)
    async with (
        scheduler_replica(database_url) as first,
        scheduler_replica(database_url) as second,
        httpx.AsyncClient(timeout=5) as client,
    ):
        reports = await eventually(lambda: _one_replica_reports(client, [first, second], expected), timeout=10)
        # One more job: the leader's next refresh shows it, long after the stand-by first found the lock taken.
        await admit(db, batches=1)
        expected["queued"] += 1
        later = await eventually(lambda: _one_replica_reports(client, [first, second], expected), timeout=10)

    assert sorted(bool(report) for report in reports) == [False, True]
    assert [bool(report) for report in later] == [bool(report) for report in reports], "the leader stayed"


async def test_a_replica_that_loses_the_lock_stops_reporting_and_the_other_can_take_over(
    db: asyncpg.Pool, database_url: str
) -> None:
    expected = await _jobs_in_several_statuses(db)
    async with (
        scheduler_replica(database_url) as first,
        scheduler_replica(database_url) as second,
        httpx.AsyncClient(timeout=5) as client,
    ):
        urls = [first, second]
        await eventually(lambda: _one_replica_reports(client, urls, expected), timeout=10)

        async def nobody_reports() -> bool | None:
            return True if not any([await _reported(client, url) for url in urls]) else None

        async with lock_taken_from_holder(database_url, GAUGES_LOCK_ID):
            await eventually(nobody_reports, timeout=10)  # the old leader stopped; the stand-by cannot lead
        reports = await eventually(lambda: _one_replica_reports(client, urls, expected), timeout=10)

    assert sorted(bool(report) for report in reports) == [False, True]
