"""Flow control against the real stack: waiting jobs, fair share between tenants, priority, per-tenant caps.

One pipeline for the module, scaled down: an in-flight window of 12 batches, 10 per tenant (so fair share, not
the caps, splits the window, also 8:4 for weights 2:1), batches of 20 bench.cpu items of about half a
millisecond each, two active jobs and two waiting jobs per tenant.

Shares are measured over a fixed stretch while both tenants have backlog: WINDOWS windows of WINDOW_S seconds,
from the moment the batches A had in flight when B queued its job are done (released before B had backlog, they
could not be shared; no dispatcher recalls a released batch) and B has a result. Each tenant's backlog is sized
from the throughput measured while A runs alone, with room to spare; the test checks that both still had
unreleased batches when the stretch ended, then cancels what is left.
"""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.pipeline import Pipeline, wait_for_status
from tests.support.poll import eventually
from tests.support.tenants import issue_key

pytestmark = [pytest.mark.e2e, pytest.mark.fairness]

WINDOW_BATCHES = 12
TENANT_CAP = 10
CPU = {"rounds": 500}
WINDOW_S = 2.0
WINDOWS = 3
BACKLOG_HEADROOM = 2.0
"""Backlog queued per tenant, as a multiple of what the measured throughput would process in the stretch."""
BIG_JOB_ITEMS = 3500
"""A's first job: outlasts B's small job and the measurement of A's throughput alone."""
TURNOVER_ALLOWANCE_S = 2.0
"""Time allowed for A's batches in flight when B queued its job to finish, on top of the stretch, when sizing."""


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def fairness_db(module_service_env: dict[str, str]) -> str:
    return module_service_env["DATABASE_URL"]


@pytest.fixture(scope="module")
def flow_pipeline(module_service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The suite's module stack settings, with the flow limits scaled down."""
    env = {
        **module_service_env,
        "SLUICE_KAFKA_RETRY_TIERS_S": "[2]",
        "SLUICE_INTAKE_BATCH_SIZE": "20",
        "SLUICE_FLOW_WINDOW_BATCHES": str(WINDOW_BATCHES),
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


@pytest.fixture
async def fairness_pool(fairness_db: str) -> AsyncIterator[asyncpg.Pool]:
    """Connections to the module's database, for the measurements and an in-flight monitor at once."""
    pool = await asyncpg.create_pool(fairness_db, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


JSON_ITEMS = 5000
"""Backlogs sized from a fast pipeline's throughput outgrow a JSON body's item limit: bigger jobs go as NDJSON."""


async def _submit(client: httpx.AsyncClient, items: int, **extra: Any) -> dict[str, Any]:
    if items <= JSON_ITEMS:
        body = {"kind": "bench.cpu", "items": list(range(items)), "options": CPU, **extra}
        response = await client.post("/v1/jobs", json=body)
    else:
        params = {"kind": "bench.cpu", "options": json.dumps(CPU), **extra}
        lines = "".join(f"{i}\n" for i in range(items))
        response = await client.post("/v1/jobs", params=params, content=lines,
                                     headers={"content-type": "application/x-ndjson"})  # fmt: skip
    assert response.status_code == 202, response.text
    return response.json()


async def _job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/jobs/{job_id}")
    response.raise_for_status()
    return response.json()


async def _timed_job(client: httpx.AsyncClient, items: int, **extra: Any) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    job = await _submit(client, items, **extra)
    final = await wait_for_status(client, job["job_id"], timeout=120)
    return final, time.monotonic() - started


async def _recorded_rate(db: asyncpg.Pool, job_ids: list[str]) -> float:
    """Items per second recorded for the jobs over the last second, once their first result is 1.5 s old (the
    first half second is the pipeline filling up)."""

    async def probe() -> float | None:
        return await db.fetchval(
            """SELECT count(*) FILTER (WHERE recorded_at >= clock_timestamp() - interval '1 second')::float8
               FROM item_results WHERE job_id = ANY($1::uuid[])
               HAVING min(recorded_at) <= clock_timestamp() - interval '1.5 seconds'""",
            job_ids,
        )

    return await eventually(probe, timeout=60)


async def _released_batches(db: asyncpg.Pool, job_ids: list[str]) -> list[tuple[uuid.UUID, int]]:
    """The jobs' batches in flight now: released, results not recorded yet."""
    rows = await db.fetch(
        """SELECT job_id, batch_index FROM task_backlog
           WHERE job_id = ANY($1::uuid[]) AND released_at IS NOT NULL""",
        job_ids,
    )
    return [(row["job_id"], row["batch_index"]) for row in rows]


async def _recorded_at(db: asyncpg.Pool, batches: list[tuple[uuid.UUID, int]]) -> datetime:
    """The database clock once every one of the batches has its results recorded (and left the backlog)."""

    async def probe() -> datetime | None:
        return await db.fetchval(
            """SELECT clock_timestamp() WHERE NOT EXISTS (
                   SELECT 1 FROM task_backlog b JOIN unnest($1::uuid[], $2::int[]) AS r(job_id, batch_index)
                   ON b.job_id = r.job_id AND b.batch_index = r.batch_index)""",
            [job_id for job_id, _ in batches], [index for _, index in batches],
        )  # fmt: skip

    return await eventually(probe, timeout=60)


async def _first_result_at(db: asyncpg.Pool, job_id: str) -> datetime:
    async def probe() -> datetime | None:
        return await db.fetchval("SELECT min(recorded_at) FROM item_results WHERE job_id = $1", uuid.UUID(job_id))

    return await eventually(probe, timeout=60)


async def _database_clock_passes(db: asyncpg.Pool, moment: datetime) -> None:
    """Wait until the database clock (the one recorded_at is taken from) is past moment."""

    async def probe() -> bool | None:
        return await db.fetchval("SELECT clock_timestamp() >= $1", moment) or None

    await eventually(probe, timeout=(moment - datetime.now(moment.tzinfo)).total_seconds() + 60)


async def _unreleased_batches(db: asyncpg.Pool, job_ids: list[str]) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM task_backlog WHERE job_id = ANY($1::uuid[]) AND released_at IS NULL", job_ids
    )


async def _in_flight_by_tenant(db: asyncpg.Pool) -> dict[str, int]:
    """Batches in flight per tenant, of jobs not cancelled (the batches of cancelled jobs skip fair share)."""
    rows = await db.fetch(
        """SELECT b.tenant, count(*) AS n FROM task_backlog b JOIN jobs j ON j.job_id = b.job_id
           WHERE b.released_at IS NOT NULL AND j.status <> 'cancelled' GROUP BY 1"""
    )
    return {row["tenant"]: row["n"] for row in rows}


async def _shares_per_window(
    db: asyncpg.Pool, a_jobs: list[str], b_jobs: list[str], start: datetime, window_s: float, windows: int
) -> list[float]:
    """B's share of the items recorded in each window from start (a window with no results is left out)."""
    rows = await db.fetch(
        """SELECT floor(extract(epoch FROM recorded_at - $3) / $4)::int AS slot,
                  count(*) FILTER (WHERE job_id = ANY($2::uuid[]))::float8 / count(*) AS b_share
           FROM item_results
           WHERE (job_id = ANY($1::uuid[]) OR job_id = ANY($2::uuid[]))
             AND recorded_at >= $3 AND recorded_at < $3 + make_interval(secs => $4 * $5)
           GROUP BY 1 ORDER BY 1""",
        a_jobs, b_jobs, start, window_s, windows,
    )  # fmt: skip
    return [round(row["b_share"], 3) for row in rows]


@dataclass(frozen=True)
class SharedStretch:
    """What `_measure_shares` saw."""

    alone_rate: float
    """Items per second A's jobs recorded before B queued its own."""
    a_backlog: int
    """A's items not yet processed when B queued its job (after topping up)."""
    b_backlog: int
    turnover_s: float
    """From B's job being queued to the start of the stretch (A's batches then in flight done, B's first result)."""
    unreleased_at_end: tuple[int, int]
    """A's and B's batches still queued when the stretch ended: both must be > 0 for it to count."""
    shares: list[float]
    """B's share per WINDOW_S window."""
    fine: list[float]
    """B's share per 1 s window."""


async def _measure_shares(
    db: asyncpg.Pool, a: httpx.AsyncClient, b: httpx.AsyncClient, a_jobs: list[str], b_share: float
) -> SharedStretch:
    """1. Measure A's throughput alone; 2. top up A's backlog and queue B's, each sized from that throughput
    and its expected share; 3. wait until A's batches then in flight are done and B has a result, then
    WINDOWS windows more; 4. count both tenants' unreleased batches; 5. cancel both tenants' jobs and wait
    until they settle (so every result of the stretch is committed, and the next test starts on an idle
    pipeline); 6. B's share per window of the stretch."""
    rate = await _recorded_rate(db, a_jobs)
    # A alone fills TENANT_CAP of the window's slots; both tenants fill all of them.
    full_rate = rate * WINDOW_BATCHES / TENANT_CAP
    stretch_items = full_rate * (WINDOWS * WINDOW_S + TURNOVER_ALLOWANCE_S) * BACKLOG_HEADROOM
    a_pending = sum([(await _job(a, job_id))["counts"]["pending"] for job_id in a_jobs])
    a_short = max(0, round(stretch_items * (1 - b_share)) - a_pending)
    if a_short:
        a_jobs = [*a_jobs, (await _submit(a, a_short))["job_id"]]
    b_items = round(stretch_items * b_share)
    b_job = (await _submit(b, b_items))["job_id"]
    queued_at = await db.fetchval("SELECT clock_timestamp()")
    # The dispatcher may read its counts just before B's job is committed and hand A one more tick: once B has
    # a result too, every batch in flight was released by a dispatcher that knew both backlogs.
    start = max(await _recorded_at(db, await _released_batches(db, a_jobs)), await _first_result_at(db, b_job))
    await _database_clock_passes(db, start + timedelta(seconds=WINDOWS * WINDOW_S))
    unreleased = (await _unreleased_batches(db, a_jobs), await _unreleased_batches(db, [b_job]))

    await _cancel_and_settle([(a, job_id) for job_id in a_jobs] + [(b, b_job)])
    return SharedStretch(
        alone_rate=rate,
        a_backlog=a_pending + a_short,
        b_backlog=b_items,
        turnover_s=(start - queued_at).total_seconds(),
        unreleased_at_end=unreleased,
        shares=await _shares_per_window(db, a_jobs, [b_job], start, WINDOW_S, WINDOWS),
        fine=await _shares_per_window(db, a_jobs, [b_job], start, 1.0, round(WINDOWS * WINDOW_S)),
    )


async def _cancel_and_settle(jobs: list[tuple[httpx.AsyncClient, str]]) -> None:
    """Cancel the jobs (each through its tenant's client) and wait until none has an item pending."""
    for client, job_id in jobs:
        cancelled = await client.delete(f"/v1/jobs/{job_id}")
        assert cancelled.status_code == 202, cancelled.text
    for client, job_id in jobs:

        async def settled(client: httpx.AsyncClient = client, job_id: str = job_id) -> bool | None:
            return (await _job(client, job_id))["counts"]["pending"] == 0 or None

        await eventually(settled, timeout=60)


def _describe(stretch: SharedStretch) -> str:
    return (
        f"A alone recorded {stretch.alone_rate:.0f} items/s; backlogs queued for the stretch: "
        f"A {stretch.a_backlog}, B {stretch.b_backlog} items; stretch started {stretch.turnover_s:.2f}s after B "
        f"queued; unreleased batches at its end: "
        f"A {stretch.unreleased_at_end[0]}, B {stretch.unreleased_at_end[1]}"
    )


async def test_a_small_job_after_a_big_one_of_another_tenant_finishes_in_about_idle_time_and_shares_are_even(
    flow_pipeline: Pipeline, fairness_pool: asyncpg.Pool, report: list[str]
) -> None:
    peak: dict[str, int] = {}

    async def sample_in_flight() -> None:
        while True:
            for tenant, count in (await _in_flight_by_tenant(fairness_pool)).items():
                peak[tenant] = max(peak.get(tenant, 0), count)
            await asyncio.sleep(0.05)  # sampling period of a monitor, not synchronisation

    big, small = _name("big-"), _name("small-")
    async with flow_pipeline.client(tenant=big) as a, flow_pipeline.client(tenant=small) as b:
        idle_final, idle_s = await _timed_job(b, 40)
        monitor = asyncio.create_task(sample_in_flight())
        try:
            a_job = await _submit(a, BIG_JOB_ITEMS)
            await wait_for_status(a, a_job["job_id"], statuses={"running"})
            busy_final, busy_s = await _timed_job(b, 40)
            a_then = await _job(a, a_job["job_id"])
            stretch = await _measure_shares(fairness_pool, a, b, [a_job["job_id"]], b_share=0.5)
        finally:
            monitor.cancel()

    report.append(f"small job (40 items) on an idle system: {idle_s:.2f}s; behind A's big job: {busy_s:.2f}s")
    report.append(
        f"A's big job: {a_then['counts']['pending']} of {BIG_JOB_ITEMS} items pending as the small one completed"
    )
    report.append(f"even weights: {_describe(stretch)}")
    report.append(
        f"even weights: B's share per 1s window: {stretch.fine}; per {WINDOW_S:.0f}s window: {stretch.shares}"
    )
    report.append(f"peak batches in flight per tenant: {sorted(peak.values(), reverse=True)} (cap {TENANT_CAP})")
    assert idle_final["status"] == busy_final["status"] == "completed"
    assert a_then["status"] == "running" and a_then["counts"]["pending"] > 0, "the big job ended before the small one"
    assert min(stretch.unreleased_at_end) > 0, f"a backlog ran out before the stretch ended: {_describe(stretch)}"
    assert len(stretch.shares) == WINDOWS, stretch.shares
    assert all(0.4 <= share <= 0.6 for share in stretch.shares), stretch.shares
    assert peak and max(peak.values()) <= TENANT_CAP


async def test_a_tenant_of_weight_2_gets_two_thirds_while_both_tenants_have_backlog(
    flow_pipeline: Pipeline, fairness_db: str, fairness_pool: asyncpg.Pool, report: list[str]
) -> None:
    light, heavy = _name("weight1-"), _name("weight2-")
    await issue_key(fairness_db, heavy, {"weight": 2})  # creates the tenant with its plan before the pipeline's key
    async with flow_pipeline.client(tenant=light) as a, flow_pipeline.client(tenant=heavy) as b:
        a_job = await _submit(a, BIG_JOB_ITEMS)
        await wait_for_status(a, a_job["job_id"], statuses={"running"})
        stretch = await _measure_shares(fairness_pool, a, b, [a_job["job_id"]], b_share=2 / 3)

    report.append(f"weights 1:2: {_describe(stretch)}")
    report.append(f"weights 1:2: B's share per 1s window: {stretch.fine}; per {WINDOW_S:.0f}s window: {stretch.shares}")
    assert min(stretch.unreleased_at_end) > 0, f"a backlog ran out before the stretch ended: {_describe(stretch)}"
    assert len(stretch.shares) == WINDOWS, stretch.shares
    assert all(2 / 3 * 0.8 <= share <= 2 / 3 * 1.2 for share in stretch.shares), stretch.shares


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
