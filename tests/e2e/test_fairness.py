"""Flow control against the real stack: waiting jobs, fair share between tenants, priority, per-tenant caps.

One pipeline for the module, scaled down: an in-flight window of 12 batches, 8 per tenant (so fair share, not
the caps, splits the window), batches of 20 bench.cpu items of about half a millisecond each, two active jobs
and two waiting jobs per tenant.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from shared.devstack.postgres import quote_ident, with_database
from tests.support.pipeline import Pipeline, wait_for_status
from tests.support.poll import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.fairness]

TENANT_CAP = 8
CPU = {"rounds": 500}


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
async def fairness_db(postgres_server_url: str) -> AsyncIterator[str]:
    name = _name("sluice_fair_")
    admin = await asyncpg.connect(with_database(postgres_server_url, "postgres"))
    await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
    try:
        yield with_database(postgres_server_url, name)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        await admin.close()


@pytest.fixture(scope="module")
def flow_pipeline(
    kafka_address: str, redis_url: str, fairness_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_address,
        "DATABASE_URL": fairness_db,
        "REDIS_URL": redis_url,
        "SLUICE_KAFKA_TOPIC_PREFIX": _name("t"),
        "SLUICE_KAFKA_TASK_PARTITIONS": "4",
        "SLUICE_KAFKA_RESULT_PARTITIONS": "4",
        "SLUICE_KAFKA_RETRY_TIERS_S": "[2]",
        "SLUICE_PROCESSOR_GROUP_ID": _name("processor-"),
        "SLUICE_AGGREGATOR_GROUP_ID": _name("aggregator-"),
        "SLUICE_INTAKE_REQUESTS_GROUP_ID": _name("intake-"),
        "SLUICE_INTAKE_BATCH_SIZE": "20",
        "SLUICE_FLOW_WINDOW_BATCHES": "12",
        "SLUICE_PLAN_MAX_IN_FLIGHT_BATCHES": str(TENANT_CAP),
        "SLUICE_PLAN_MAX_ACTIVE_JOBS": "2",
        "SLUICE_PLAN_MAX_WAITING_JOBS": "2",
    }
    running = Pipeline(env, tmp_path_factory.mktemp("fairness") / "services.log")
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def report(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Lines written to the terminal after the module: the measured times and shares."""
    lines: list[str] = []
    yield lines
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            for line in lines:
                reporter.write_line(f"fairness: {line}")


async def _submit(client: httpx.AsyncClient, items: int, **extra: Any) -> dict[str, Any]:
    body = {"kind": "bench.cpu", "items": list(range(items)), "options": CPU, **extra}
    response = await client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return response.json()


async def _timed_job(client: httpx.AsyncClient, items: int, **extra: Any) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    job = await _submit(client, items, **extra)
    final = await wait_for_status(client, job["job_id"], timeout=120)
    return final, time.monotonic() - started


async def _in_flight_by_tenant(db: asyncpg.Connection) -> dict[str, int]:
    rows = await db.fetch("SELECT tenant, count(*) AS n FROM task_backlog WHERE released_at IS NOT NULL GROUP BY 1")
    return {row["tenant"]: row["n"] for row in rows}


async def _shares_per_window(db: asyncpg.Connection, a_job: str, b_job: str, window_s: float) -> list[float]:
    """B's share of the items recorded in each full window while both jobs were recording results."""
    rows = await db.fetch(
        """WITH span AS (
               SELECT greatest(min(recorded_at) FILTER (WHERE job_id = $1), min(recorded_at) FILTER (WHERE job_id = $2))
                          AS start,
                      least(max(recorded_at) FILTER (WHERE job_id = $1), max(recorded_at) FILTER (WHERE job_id = $2))
                          AS stop
               FROM item_results WHERE job_id = ANY(ARRAY[$1, $2]::uuid[]))
           SELECT floor(extract(epoch FROM r.recorded_at - s.start) / $3)::int AS slot,
                  count(*) FILTER (WHERE r.job_id = $2)::float8 / count(*) AS b_share
           FROM item_results r, span s
           WHERE r.job_id = ANY(ARRAY[$1, $2]::uuid[]) AND r.recorded_at >= s.start
             AND r.recorded_at < s.start + floor(extract(epoch FROM s.stop - s.start) / $3) * $3 * interval '1 second'
           GROUP BY 1 ORDER BY 1""",
        uuid.UUID(a_job), uuid.UUID(b_job), window_s,
    )  # fmt: skip
    return [round(row["b_share"], 3) for row in rows]


async def test_a_small_job_after_a_big_one_of_another_tenant_finishes_in_about_idle_time_and_shares_are_even(
    flow_pipeline: Pipeline, fairness_db: str, report: list[str]
) -> None:
    db = await asyncpg.connect(fairness_db)
    peak: dict[str, int] = {}

    async def sample_in_flight() -> None:
        while True:
            for tenant, count in (await _in_flight_by_tenant(db)).items():
                peak[tenant] = max(peak.get(tenant, 0), count)
            await asyncio.sleep(0.05)  # sampling period of a monitor, not synchronisation

    big, small = _name("big-"), _name("small-")
    try:
        async with flow_pipeline.client(tenant=big) as a, flow_pipeline.client(tenant=small) as b:
            idle_final, idle_s = await _timed_job(b, 40)
            monitor = asyncio.create_task(sample_in_flight())
            a_started = time.monotonic()
            a_job = await _submit(a, 3500)
            await wait_for_status(a, a_job["job_id"], statuses={"running"})
            busy_final, busy_s = await _timed_job(b, 40)
            a_status_then = (await a.get(f"/v1/jobs/{a_job['job_id']}")).json()["status"]
            b_job = await _submit(b, 1500)
            await wait_for_status(b, b_job["job_id"], timeout=120)
            a_final = await wait_for_status(a, a_job["job_id"], timeout=180)
            a_s = time.monotonic() - a_started
            monitor.cancel()
        fine = await _shares_per_window(db, a_job["job_id"], b_job["job_id"], 1.0)
        shares = await _shares_per_window(db, a_job["job_id"], b_job["job_id"], 2.0)
    finally:
        await db.close()

    report.append(f"small job (40 items) on an idle system: {idle_s:.2f}s; behind A's 3500-item job: {busy_s:.2f}s")
    report.append(f"A's 3500-item job completed after {a_s:.2f}s")
    report.append(f"B's share while both had backlog, per 1s window: {fine}; per 2s window: {shares}")
    report.append(f"peak batches in flight per tenant: {sorted(peak.values(), reverse=True)} (cap {TENANT_CAP})")
    assert idle_final["status"] == busy_final["status"] == a_final["status"] == "completed"
    assert a_status_then == "running", "the small job finished while the big one was still running"
    assert len(shares) >= 2, shares
    assert all(0.4 <= share <= 0.6 for share in shares), shares
    assert peak and max(peak.values()) <= TENANT_CAP


async def test_a_high_priority_job_overtakes_a_normal_backlog_of_the_same_tenant(
    flow_pipeline: Pipeline, report: list[str]
) -> None:
    async with flow_pipeline.client(tenant=_name("prio-")) as client:
        backlog = await _submit(client, 4000)
        await wait_for_status(client, backlog["job_id"], statuses={"running"})
        urgent, urgent_s = await _timed_job(client, 40, priority="high")
        backlog_then = (await client.get(f"/v1/jobs/{backlog['job_id']}")).json()
        await client.delete(f"/v1/jobs/{backlog['job_id']}")
        await wait_for_status(client, backlog["job_id"])

    report.append(f"high job (40 items) behind a 4000-item normal backlog: completed in {urgent_s:.2f}s")
    assert urgent["status"] == "completed"
    assert backlog_then["status"] == "running" and backlog_then["counts"]["pending"] > 0, backlog_then


async def test_bulk_work_only_uses_capacity_that_normal_work_leaves(flow_pipeline: Pipeline, report: list[str]) -> None:
    async with flow_pipeline.client(tenant=_name("bulk-")) as client:
        bulk = await _submit(client, 3000, priority="bulk")
        await wait_for_status(client, bulk["job_id"], statuses={"running"})
        normal, normal_s = await _timed_job(client, 40)
        bulk_then = (await client.get(f"/v1/jobs/{bulk['job_id']}")).json()
        await client.delete(f"/v1/jobs/{bulk['job_id']}")
        await wait_for_status(client, bulk["job_id"])

    report.append(f"normal job (40 items) behind a 3000-item bulk backlog: completed in {normal_s:.2f}s")
    assert normal["status"] == "completed"
    assert bulk_then["status"] == "running" and bulk_then["counts"]["pending"] > 0, bulk_then


async def test_jobs_over_the_active_limit_wait_in_line_then_start_by_themselves_and_a_full_line_gets_429(
    flow_pipeline: Pipeline,
) -> None:
    async with flow_pipeline.client(tenant=_name("cap-")) as client:
        first, second = await _submit(client, 1000), await _submit(client, 1000)
        third, fourth = await _submit(client, 40), await _submit(client, 40)
        turned_away = await client.post("/v1/jobs", json={"kind": "bench.cpu", "items": [1], "options": CPU})
        third_waiting = (await client.get(f"/v1/jobs/{third['job_id']}")).json()
        fourth_waiting = (await client.get(f"/v1/jobs/{fourth['job_id']}")).json()

        await client.delete(f"/v1/jobs/{first['job_id']}")
        third_final = await wait_for_status(client, third["job_id"], timeout=60)
        await client.delete(f"/v1/jobs/{second['job_id']}")
        fourth_final = await wait_for_status(client, fourth["job_id"], timeout=60)

        async def second_settled() -> dict[str, Any] | None:
            body = (await client.get(f"/v1/jobs/{second['job_id']}")).json()
            return body if body["counts"]["pending"] == 0 else None

        await eventually(second_settled, timeout=60)

    assert (first["status"], second["status"], third["status"], fourth["status"]) == (
        "queued", "queued", "waiting", "waiting",
    )  # fmt: skip
    assert (third_waiting["status"], third_waiting["queue_position"]) == ("waiting", 1)
    assert (fourth_waiting["status"], fourth_waiting["queue_position"]) == ("waiting", 2)
    assert turned_away.status_code == 429, turned_away.text
    assert turned_away.headers["Retry-After"].isdigit()
    assert turned_away.json()["error"]["field"] == "max_waiting_jobs"
    assert third_final["status"] == "completed"
    assert fourth_final["status"] == "completed"
