"""Flow control against the real stack: waiting jobs, fair share between tenants, priority, per-tenant caps.

One stack for the module, scaled down: an in-flight window of 12 batches, 10 per tenant (so fair share, not the
caps, splits the window), batches of 20 bench.cpu items of about half a millisecond each, two active jobs and two
waiting jobs per tenant.

Fair share is checked on what the dispatcher releases, never on throughput over a stretch of time (`python -m bench`
reports that share: its "fair share" rows). Each share test has a stack of its own without a processor, so no
batch it releases ever completes: a filler tenant holds the whole window, two tenants queue behind it, and once
the scheduler ends the filler (past its deadline) the dispatcher hands out the whole window in one round, by weight.
"""

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.pipeline import Pipeline, wait_for_status
from tests.support.poll import eventually
from tests.support.stack import FreshStacks
from tests.support.tenants import issue_key

pytestmark = [pytest.mark.e2e, pytest.mark.fairness]

WINDOW_BATCHES = 12
TENANT_CAP = 10
BATCH_ITEMS = 20
CPU = {"rounds": 500}
BIG_JOB_ITEMS = 3500
"""A's job in the small-job test: outlasts B's small job."""
FILLER_ITEMS = 300
"""The filler's job: 15 batches, more than the window, so it holds every slot."""
QUEUED_ITEMS = 400
"""Each tenant's job behind the filler: 20 batches, more than its share of the window."""


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def stack_overrides() -> dict[str, str]:
    """The flow limits scaled down."""
    return {
        "SLUICE_KAFKA_RETRY_TIERS_S": "[2]",
        "SLUICE_INTAKE_BATCH_SIZE": str(BATCH_ITEMS),
        "SLUICE_FLOW_WINDOW_BATCHES": str(WINDOW_BATCHES),
        "SLUICE_PLAN_MAX_IN_FLIGHT_BATCHES": str(TENANT_CAP),
        "SLUICE_PLAN_MAX_ACTIVE_JOBS": "2",
        "SLUICE_PLAN_MAX_WAITING_JOBS": "2",
        "SLUICE_SCHEDULER_SWEEP_INTERVAL_S": "0.5",
    }


JSON_ITEMS = 5000
"""Bigger jobs go as NDJSON: a JSON body's item limit."""


async def _submit(
    client: httpx.AsyncClient, items: int, options: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A bench.cpu job of ``items`` (with ``options``, CPU by default); ``extra`` fields such as priority."""
    options = options or CPU
    if items <= JSON_ITEMS:
        body = {"kind": "bench.cpu", "items": list(range(items)), "options": options, **extra}
        response = await client.post("/v1/jobs", json=body)
    else:
        params = {"kind": "bench.cpu", "options": json.dumps(options), **extra}
        lines = "".join(f"{i}\n" for i in range(items))
        response = await client.post("/v1/jobs", params=params, content=lines,
                                     headers={"content-type": "application/x-ndjson"})  # fmt: skip
    assert response.status_code == 202, response.text
    return response.json()


async def _job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/jobs/{job_id}")
    response.raise_for_status()
    return response.json()


async def _in_flight_by_tenant(db: asyncpg.Pool) -> dict[str, int]:
    """Batches in flight per tenant, of jobs not cancelled (the batches of cancelled jobs skip fair share)."""
    rows = await db.fetch(
        """SELECT b.tenant, count(*) AS n FROM task_backlog b JOIN jobs j ON j.job_id = b.job_id
           WHERE b.released_at IS NOT NULL AND j.status <> 'cancelled' GROUP BY 1"""
    )
    return {row["tenant"]: row["n"] for row in rows}


async def _cancel_and_settle(jobs: list[tuple[httpx.AsyncClient, str]]) -> None:
    """Cancel the jobs (each through its tenant's client) and wait until none has an item pending, so the next
    test starts on an idle stack."""
    for client, job_id in jobs:
        cancelled = await client.delete(f"/v1/jobs/{job_id}")
        assert cancelled.status_code == 202, cancelled.text
    for client, job_id in jobs:

        async def settled(client: httpx.AsyncClient = client, job_id: str = job_id) -> bool | None:
            return (await _job(client, job_id))["counts"]["pending"] == 0 or None

        await eventually(settled, timeout=60)


async def test_a_small_job_behind_another_tenants_big_job_completes_first_and_no_tenant_exceeds_its_cap(
    stack: Pipeline, stack_db: asyncpg.Pool
) -> None:
    peak: dict[str, int] = {}

    async def sample_in_flight() -> None:
        while True:
            for tenant, count in (await _in_flight_by_tenant(stack_db)).items():
                peak[tenant] = max(peak.get(tenant, 0), count)
            await asyncio.sleep(0.05)  # sampling period of a monitor, not synchronisation

    big, small = _name("big-"), _name("small-")
    async with stack.client(tenant=big) as a, stack.client(tenant=small) as b:
        monitor = asyncio.create_task(sample_in_flight())
        try:
            a_job = await _submit(a, BIG_JOB_ITEMS)
            await wait_for_status(a, a_job["job_id"], statuses={"running"})
            small_job = await _submit(b, 40)
            small_final = await wait_for_status(b, small_job["job_id"], timeout=120)
            a_then = await _job(a, a_job["job_id"])
        finally:
            monitor.cancel()
        await _cancel_and_settle([(a, a_job["job_id"])])

    assert small_final["status"] == "completed"
    assert a_then["status"] == "running" and a_then["counts"]["pending"] > 0, "the big job ended before the small one"
    assert peak and max(peak.values()) <= TENANT_CAP, peak


async def _released_by_tenant(db: asyncpg.Pool) -> dict[str, int]:
    rows = await db.fetch("SELECT tenant, count(*) AS n FROM task_backlog WHERE released_at IS NOT NULL GROUP BY 1")
    return {row["tenant"]: row["n"] for row in rows}


async def _window_handed_out(fresh_stack: FreshStacks, weights: dict[str, int]) -> dict[str, int]:
    """On a stack without a processor: a filler job holds the whole window; the tenants (of these weights) each
    queue a job; the scheduler, started then, ends the filler past its deadline. Returns the batches the
    dispatcher released to each tenant once the window was free."""
    stack = await fresh_stack.start(services=["intake"])
    db = await fresh_stack.db(stack)
    filler = _name("filler-")
    await issue_key(stack.database_url, filler, {"max_in_flight_batches": WINDOW_BATCHES})
    for tenant, weight in weights.items():
        await issue_key(stack.database_url, tenant, {"weight": weight})  # the plan before the stack's key
    async with stack.client(filler) as client:
        await _submit(client, FILLER_ITEMS, {**CPU, "job_timeout_s": 1})

    async def window_held() -> bool | None:
        return await _released_by_tenant(db) == {filler: WINDOW_BATCHES} or None

    await eventually(window_held, timeout=30)
    for tenant in weights:
        async with stack.client(tenant) as client:
            await _submit(client, QUEUED_ITEMS)
    assert await _released_by_tenant(db) == {filler: WINDOW_BATCHES}, "nothing goes past a full window"
    stack.start_service("scheduler")

    async def handed_out() -> dict[str, int] | None:
        released = await _released_by_tenant(db)
        return released if filler not in released and sum(released.values()) == WINDOW_BATCHES else None

    return await eventually(handed_out, timeout=60)


async def test_two_tenants_of_equal_weight_queued_behind_a_full_window_get_half_of_it_each(
    fresh_stack: FreshStacks,
) -> None:
    first, second = _name("even-"), _name("even-")

    released = await _window_handed_out(fresh_stack, {first: 1, second: 1})

    assert released == {first: WINDOW_BATCHES // 2, second: WINDOW_BATCHES // 2}


async def test_a_tenant_of_weight_2_gets_two_thirds_of_the_window_beside_a_tenant_of_weight_1(
    fresh_stack: FreshStacks,
) -> None:
    light, heavy = _name("weight1-"), _name("weight2-")

    released = await _window_handed_out(fresh_stack, {light: 1, heavy: 2})

    assert released == {light: WINDOW_BATCHES // 3, heavy: WINDOW_BATCHES * 2 // 3}


async def test_a_high_priority_job_overtakes_a_normal_backlog_of_the_same_tenant(stack: Pipeline) -> None:
    async with stack.client(tenant=_name("prio-")) as client:
        backlog = await _submit(client, 4000)
        await wait_for_status(client, backlog["job_id"], statuses={"running"})
        urgent_job = await _submit(client, 40, priority="high")
        urgent = await wait_for_status(client, urgent_job["job_id"], timeout=120)
        backlog_then = (await client.get(f"/v1/jobs/{backlog['job_id']}")).json()
        await client.delete(f"/v1/jobs/{backlog['job_id']}")
        await wait_for_status(client, backlog["job_id"])

    assert urgent["status"] == "completed"
    assert backlog_then["status"] == "running" and backlog_then["counts"]["pending"] > 0, backlog_then


async def test_bulk_work_only_uses_capacity_that_normal_work_leaves(stack: Pipeline) -> None:
    async with stack.client(tenant=_name("bulk-")) as client:
        bulk = await _submit(client, 3000, priority="bulk")
        await wait_for_status(client, bulk["job_id"], statuses={"running"})
        normal_job = await _submit(client, 40)
        normal = await wait_for_status(client, normal_job["job_id"], timeout=120)
        bulk_then = (await client.get(f"/v1/jobs/{bulk['job_id']}")).json()
        await client.delete(f"/v1/jobs/{bulk['job_id']}")
        await wait_for_status(client, bulk["job_id"])

    assert normal["status"] == "completed"
    assert bulk_then["status"] == "running" and bulk_then["counts"]["pending"] > 0, bulk_then


async def test_jobs_over_the_active_limit_wait_in_line_then_start_by_themselves_and_a_full_line_gets_429(
    stack: Pipeline,
) -> None:
    async with stack.client(tenant=_name("cap-")) as client:
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
