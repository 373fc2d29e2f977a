"""Chaos helpers: scenario sizes, a per-job loss audit, progress timelines and the session's scenario recorder."""

import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import psutil
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from tests.support.pipeline import TERMINAL, Pipeline
from tests.support.poll import eventually

FULL_ENV = "SLUICE_CHAOS_FULL"


@dataclass(frozen=True)
class Scale:
    """How big and how long: quick in the default run, full under `make chaos`."""

    full: bool
    items: int
    cpu_rounds: int
    postgres_outage_s: float
    broker_pause_s: float
    redis_outage_s: float

    @classmethod
    def from_env(cls) -> "Scale":
        if os.environ.get(FULL_ENV, "") not in ("", "0"):
            return cls(True, items=4000, cpu_rounds=3000, postgres_outage_s=15, broker_pause_s=10, redis_outage_s=8)
        # Quick: enough items that every break lands mid-job, outages long enough for several probes to see them.
        return cls(False, items=1000, cpu_rounds=3000, postgres_outage_s=3, broker_pause_s=4, redis_outage_s=3)


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


async def submit(client: httpx.AsyncClient, kind: str, items: int, options: dict[str, Any] | None = None) -> str:
    """POST a job of `items` small items; its id (the 202 is asserted)."""
    body: dict[str, Any] = {"kind": kind, "items": list(range(items))}
    if options:
        body["options"] = options
    response = await client.post("/v1/jobs", json=body)
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

    def longest_stall(self) -> float:
        """The longest stretch without progress while the job was still running."""
        longest, since, last = 0.0, 0.0, -1
        for at, done in self.samples:
            if done != last:
                longest, since, last = max(longest, at - since), at, done
        return longest


async def follow(client: httpx.AsyncClient, job_id: str, mark: float, timeout: float = 180.0) -> Timeline:
    """Sample the job's progress every 50 ms from `mark` (a time.monotonic()) until it is terminal."""
    timeline = Timeline(mark)

    async def probe() -> dict[str, Any] | None:
        job = await job_body(client, job_id)
        timeline.samples.append((time.monotonic() - mark, done_of(job)))
        return job if job["status"] in TERMINAL else None

    timeline.final = await eventually(probe, timeout=timeout, interval=0.05)
    return timeline


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


def process_listening_on(port: int) -> psutil.Process:
    """The process with a listening TCP socket on `port` (a launched broker, Redis...)."""
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
            return psutil.Process(connection.pid)
    raise LookupError(f"no process listens on port {port}")


class Paused:
    """SIGSTOP a process on entry, SIGCONT on exit: a dependency that hangs rather than refuses."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process

    def __enter__(self) -> "Paused":
        os.kill(self.process.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


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

    def summary(self) -> dict[str, Any]:
        ran = [record for record in self.records if not record.skipped]
        return {
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
