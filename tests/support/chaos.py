"""Chaos helpers: scenario sizes, a per-job loss audit, progress timelines and the session's scenario recorder."""

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar
from uuid import UUID

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from sluice.contracts.events import TERMINAL_STATUSES
from tests.support.pipeline import Pipeline
from tests.support.poll import eventually

FULL_ENV = "SLUICE_CHAOS_FULL"
T = TypeVar("T")


@dataclass(frozen=True)
class Scale:
    """How big and how long: quick in the default run, full under `make chaos`."""

    full: bool
    items: int
    cpu_rounds: int
    postgres_outage_s: float
    broker_pause_s: float
    redis_outage_s: float
    rolling_items: int
    """The job a rolling restart of a 3-broker cluster runs under (light items: many batches, little CPU)."""
    rolling_cpu_rounds: int

    @classmethod
    def from_env(cls) -> "Scale":
        if os.environ.get(FULL_ENV, "") not in ("", "0"):
            return cls(
                True, items=4000, cpu_rounds=3000, postgres_outage_s=15, broker_pause_s=10, redis_outage_s=8,
                rolling_items=100_000, rolling_cpu_rounds=300,
            )  # fmt: skip
        # Quick: enough items that every break lands mid-job, outages long enough for several probes to see them.
        return cls(
            False, items=1000, cpu_rounds=3000, postgres_outage_s=3, broker_pause_s=4, redis_outage_s=3,
            rolling_items=20_000, rolling_cpu_rounds=300,
        )  # fmt: skip


@dataclass(frozen=True)
class JobAudit:
    """What Postgres and the API show for one job: rows, missing indexes, extra rows or counts."""

    job_id: str
    submitted: int
    rows: int
    counted: int
    lost: int
    duplicates: int
    status: str

    @property
    def counts_match_rows(self) -> bool:
        return self.counted == self.rows


def assert_completed_whole(audit: JobAudit, pipeline: Pipeline) -> None:
    """The job completed, with every item's result stored once and counted once (the services' log if not)."""
    assert audit.status == "completed", pipeline.logs()
    assert (audit.lost, audit.duplicates) == (0, 0), audit
    assert audit.counts_match_rows, audit


async def audit_job(database_url: str, job: dict[str, Any], submitted: int) -> JobAudit:
    """Every index 0..n-1 present exactly once? `job` is the final GET /v1/jobs/{id} body."""
    connection = await asyncpg.connect(database_url)
    try:
        row = await connection.fetchrow(
            """SELECT count(*) AS rows,
                      count(DISTINCT item_index) FILTER (WHERE item_index >= 0 AND item_index < $2) AS present
               FROM item_results WHERE job_id = $1""",
            UUID(job["job_id"]),
            submitted,
        )
    finally:
        await connection.close()
    counts = job["counts"]
    counted = counts["succeeded"] + counts["failed"] + counts["cancelled"]
    rows, present = row["rows"], row["present"]
    return JobAudit(
        job_id=job["job_id"],
        submitted=submitted,
        rows=rows,
        counted=counted,
        lost=submitted - present,
        duplicates=(rows - present) + max(0, counted - rows),
        status=job["status"],
    )


async def item_statuses(database_url: str, job_id: str, items: int) -> dict[str, int]:
    """The job's stored result rows by status, once it has one for each of its `items` (progress-bounded wait)."""
    connection = await asyncpg.connect(database_url)
    guard = StallGuard(job_id)
    try:
        while True:
            rows = await connection.fetch(
                "SELECT status, count(*) AS n FROM item_results WHERE job_id = $1 GROUP BY status", UUID(job_id)
            )
            counts = {row["status"]: row["n"] for row in rows}
            if sum(counts.values()) >= items:
                return counts
            guard.see(sum(counts.values()), time.monotonic())
            await asyncio.sleep(0.1)  # poll interval; the deadline is on progress (StallGuard)
    finally:
        await connection.close()


JSON_ITEMS_MAX = 10_000
"""Intake's cap on the items of a JSON body; a larger job is sent as NDJSON, as a user would."""


async def submit(client: httpx.AsyncClient, kind: str, items: int, options: dict[str, Any] | None = None) -> str:
    """POST a job of `items` small items (JSON, or NDJSON past JSON_ITEMS_MAX); its id (the 202 is asserted)."""
    if items > JSON_ITEMS_MAX:
        params = {"kind": kind, "options": json.dumps(options or {})}
        body = "".join(f"{index}\n" for index in range(items)).encode()
        headers = {"Content-Type": "application/x-ndjson"}
        response = await client.post("/v1/jobs", params=params, content=body, headers=headers)
    else:
        response = await client.post(
            "/v1/jobs", json={"kind": kind, "items": list(range(items)), "options": options or {}}
        )
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def done_of(job: dict[str, Any]) -> int:
    return job["counts"]["total"] - job["counts"]["pending"]


async def job_body(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/jobs/{job_id}")
    response.raise_for_status()
    return response.json()


async def wait_until_partly_done(client: httpx.AsyncClient, job_id: str, timeout: float = 120.0) -> int:
    """Poll until some but not all items are done: the moment to break something."""

    seen: list[dict[str, Any]] = []

    async def probe() -> int | None:
        seen[:] = [job := await job_body(client, job_id)]
        done = done_of(job)
        return done if 0 < done < job["counts"]["total"] else None

    try:
        return await eventually(probe, timeout=timeout, interval=0.02)
    except TimeoutError as exc:
        raise AssertionError(f"job {job_id} never partly done within {timeout}s; last seen: {seen}") from exc


@dataclass
class Timeline:
    """(seconds since a mark, items done) samples of one job until it ended, and its final body."""

    mark: float
    samples: list[tuple[float, int]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)

    def first_progress_after_mark(self) -> float | None:
        """Seconds from the mark to the first sample whose count exceeds the count at the mark."""
        if not self.samples:
            return None
        start = self.samples[0][1]
        return next((at for at, done in self.samples if done > start), None)

    def items_per_s(self) -> float:
        """Items done per second from the first sample to the last."""
        if len(self.samples) < 2 or self.samples[-1][0] == self.samples[0][0]:
            return 0.0
        (first_at, first), (last_at, last) = self.samples[0], self.samples[-1]
        return (last - first) / (last_at - first_at)

    def longest_stall(self) -> float:
        """The longest stretch without progress while the job was still running."""
        longest, since, last = 0.0, 0.0, -1
        for at, done in self.samples:
            if done != last:
                longest, since, last = max(longest, at - since), at, done
        return longest


STALL_TIMEOUT_S = 90.0
"""How long a job may go without one item ending before a wait on it fails: waits are on progress, never on the
whole job, so a big job on a slow hour has the time it needs and a stuck one still fails."""


@dataclass
class StallGuard:
    """Raises TimeoutError once the count it is shown has not moved for `stall_timeout` seconds."""

    job_id: str
    stall_timeout: float = STALL_TIMEOUT_S
    done: int = -1
    since: float = 0.0

    def see(self, done: int, now: float) -> None:
        if done != self.done:
            self.done, self.since = done, now
        elif now - self.since > self.stall_timeout:
            raise TimeoutError(f"job {self.job_id}: no item ended for {self.stall_timeout:.0f} s ({done} done)")


async def follow(
    client: httpx.AsyncClient, job_id: str, mark: float, stall_timeout: float = STALL_TIMEOUT_S
) -> Timeline:
    """Sample the job's progress every 50 ms from `mark` (a time.monotonic()) until it is terminal."""
    timeline, guard = Timeline(mark), StallGuard(job_id, stall_timeout)
    while True:
        job = await job_body(client, job_id)
        now = time.monotonic()
        timeline.samples.append((now - mark, done_of(job)))
        if job["status"] in TERMINAL_STATUSES:
            timeline.final = job
            return timeline
        guard.see(done_of(job), now)
        await asyncio.sleep(0.05)  # sampling interval; the deadline is on progress (StallGuard)


async def progress_rate(
    client: httpx.AsyncClient, job_id: str, items: int, stall_timeout: float = STALL_TIMEOUT_S
) -> float:
    """Items/s the job makes over its next `items` items (or until it ends), sampled every 50 ms."""
    guard = StallGuard(job_id, stall_timeout)
    start_at, start = time.monotonic(), done_of(await job_body(client, job_id))
    while True:
        job = await job_body(client, job_id)
        now, done = time.monotonic(), done_of(job)
        if done >= start + items or job["status"] in TERMINAL_STATUSES:
            return (done - start) / (now - start_at)
        guard.see(done, now)
        await asyncio.sleep(0.05)  # sampling interval; the deadline is on progress (StallGuard)


async def wait_for_exit(pipeline: Pipeline, label: str, since: float, timeout: float = 30.0) -> float:
    """Seconds from `since` until the supervisor saw service `label` exit."""

    async def probe() -> float | None:
        exited = any(noticed.name == label for noticed in pipeline.supervisor.exits)
        return time.monotonic() - since if exited else None

    return await eventually(probe, timeout=timeout, interval=0.02)


async def wait_until_ready(pipeline: Pipeline, timeout: float = 60.0) -> None:
    """GET /readyz answers 200 (Pipeline.wait_until_ready refuses once any service has exited)."""
    async with httpx.AsyncClient(base_url=pipeline.url, timeout=2) as client:

        async def probe() -> bool | None:
            try:
                return (await client.get("/readyz")).status_code == 200 or None
            except httpx.HTTPError:
                return None

        await eventually(probe, timeout=timeout, interval=0.1)


async def metric_by_label(metrics_url: str, name: str, label: str) -> dict[str, float]:
    """One metric's samples from a service's /metrics, summed by the value of one label."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(metrics_url)
    response.raise_for_status()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name:
                key = sample.labels.get(label, "")
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


@dataclass(frozen=True)
class Pace(Generic[T]):
    """What a wait returned, and how many items per second the processor ran meanwhile."""

    result: T
    items_per_s: float


async def processor_pace(metrics_url: str, wait: Awaitable[T]) -> Pace[T]:
    """Await `wait`, counting the items the processor ran meanwhile (its sluice_items_processed_total; the items
    of cancelled jobs it skipped are not counted)."""

    async def ran() -> float:
        by_status = await metric_by_label(metrics_url, "sluice_items_processed_total", "status")
        return sum(count for status, count in by_status.items() if status != "cancelled")

    before, started = await ran(), time.monotonic()
    result = await wait
    return Pace(result, (await ran() - before) / (time.monotonic() - started))


async def outage_probes(
    client: httpx.AsyncClient, paths: list[str], duration: float, interval: float = 0.5
) -> list[httpx.Response]:
    """GET each path repeatedly for `duration` seconds (the outage's length, not a wait for readiness)."""
    answers: list[httpx.Response] = []
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        for path in paths:
            answers.append(await client.get(path))
        await asyncio.sleep(interval)  # pacing inside a fixed-length outage
    return answers


@dataclass
class ScenarioRecord:
    """One scenario's figures for the chaos summary."""

    name: str
    kills: int = 0
    broker_kills: int = 0
    """Broker processes killed or stopped (counted in kills too)."""
    items: int = 0
    lost: int = 0
    duplicates: int = 0
    passed: bool = False
    skipped: bool = False
    measured: dict[str, float] = field(default_factory=dict)

    def add(self, audit: JobAudit) -> None:
        self.items += audit.submitted
        self.lost += audit.lost
        self.duplicates += audit.duplicates


@dataclass
class Recorder:
    """Every scenario of the session; summary() is the JSON `make chaos` prints last."""

    records: list[ScenarioRecord] = field(default_factory=list)
    broker: str = "tansu"
    brokers: int = 1

    def summary(self) -> dict[str, Any]:
        ran = [record for record in self.records if not record.skipped]
        return {
            "broker": self.broker,
            "brokers": self.brokers,
            "broker_kills": sum(record.broker_kills for record in ran),
            "scenarios": len(ran),
            "kills": sum(record.kills for record in ran),
            "items": sum(record.items for record in ran),
            "lost": sum(record.lost for record in ran),
            "duplicates": sum(record.duplicates for record in ran),
            "failed_scenarios": [record.name for record in ran if not record.passed],
            "skipped_scenarios": [record.name for record in self.records if record.skipped],
            "measured": {record.name: record.measured for record in ran if record.measured},
        }

    def as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(record) for record in self.records]


async def existing_topics(address: str) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def read_topics_until(
    address: str, topics: list[str], done: Callable[[list[ConsumerRecord]], bool], timeout: float = 60.0
) -> list[ConsumerRecord]:
    """Read several topics from the start (no group) until ``done(records so far)``; TimeoutError otherwise."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=address, auto_offset_reset="earliest")
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(timeout):
            while not done(records):
                for partition_records in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def wait_for_assignment(pipeline: Pipeline, label: str, topic: str, timeout: float = 60.0) -> None:
    """Until service `label` logs that it was assigned partitions of `topic` (its group join is done)."""
    needle = f"topic='{topic}'"

    async def probe() -> bool | None:
        lines = pipeline.supervisor.tail(label)
        return any("assigned to partitions" in line and needle in line for line in lines) or None

    await eventually(probe, timeout=timeout, interval=0.1)
