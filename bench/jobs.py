"""Submitting bench jobs through intake's REST API and watching them finish in PostgreSQL."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import orjson

from bench.http import LeanClient, TransportFailed
from sluice.contracts.events import TERMINAL_STATUSES

NDJSON = "application/x-ndjson"
LINES_PER_CHUNK = 5_000
SUBMIT_ATTEMPTS = 3


def bench_item(index: int) -> dict[str, Any]:
    """The item every scenario and both ceilings use: small, distinct, JSON."""
    return {"id": index, "name": f"item-{index}"}


class SubmitRefused(RuntimeError):
    pass


@dataclass(frozen=True)
class Upload:
    job_id: str
    first_byte_at: float
    """Wall-clock time (time.time()) the first body byte was handed to the connection."""
    answered_at: float


async def upload_ndjson(
    client: httpx.AsyncClient, kind: str, items: int, options: dict[str, Any] | None = None
) -> Upload:
    """One job of `items` bench items, streamed as NDJSON in chunks; returns when intake answers 202."""
    first_byte_at = 0.0

    async def body() -> AsyncIterator[bytes]:
        nonlocal first_byte_at
        for start in range(0, items, LINES_PER_CHUNK):
            chunk = b"".join(
                orjson.dumps(bench_item(i)) + b"\n" for i in range(start, min(start + LINES_PER_CHUNK, items))
            )
            if not first_byte_at:
                first_byte_at = time.time()
            yield chunk

    params = {"kind": kind, "options": orjson.dumps(options or {}).decode()}
    response = await client.post("/v1/jobs", params=params, content=body(), headers={"content-type": NDJSON})
    if response.status_code != 202:
        raise SubmitRefused(f"{kind} upload refused: {response.status_code} {response.text[:500]}")
    return Upload(response.json()["job_id"], first_byte_at, time.time())


@dataclass(frozen=True)
class Submitted:
    job_id: str
    sent_at: float
    """Wall-clock send time, the start of each of its items' end-to-end latency."""
    request_ms: float


async def submit_json(client: LeanClient, kind: str, first_index: int, count: int) -> Submitted:
    """One small job; a connection dropped under load is retried with the same Idempotency-Key (so it is still
    one job) and the retry counts in the request's latency."""
    body = orjson.dumps({"kind": kind, "items": [bench_item(i) for i in range(first_index, first_index + count)]})
    headers = {"Idempotency-Key": f"bench-{uuid.uuid4()}"}
    sent_at, started = time.time(), time.perf_counter()
    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        try:
            answer = await client.post_json("/v1/jobs", body, headers)
            break
        except TransportFailed:
            if attempt == SUBMIT_ATTEMPTS:
                raise
    request_ms = (time.perf_counter() - started) * 1000
    if answer.status != 202:
        raise SubmitRefused(f"{kind} job refused: {answer.status} {answer.body[:500]!r}")
    return Submitted(orjson.loads(answer.body)["job_id"], sent_at, request_ms)


async def wait_until_finished(pool: asyncpg.Pool, job_ids: Sequence[str], timeout: float) -> float:
    """Poll until every job is terminal; returns the wall-clock time it was first seen so. Raises if any job
    ended other than completed."""
    async with asyncio.timeout(timeout):
        while True:
            rows = await pool.fetch(
                "SELECT job_id::text, status FROM jobs WHERE job_id = ANY($1::uuid[])", list(job_ids)
            )
            seen_at = time.time()
            if len(rows) == len(job_ids) and all(row["status"] in TERMINAL_STATUSES for row in rows):
                bad = [(row["job_id"], row["status"]) for row in rows if row["status"] != "completed"]
                if bad:
                    raise RuntimeError(f"jobs did not complete: {bad[:5]}")
                return seen_at
            await asyncio.sleep(0.05)  # poll interval inside the deadline


async def stored_results(pool: asyncpg.Pool, job_ids: Sequence[str]) -> int:
    """How many result rows are durable for these jobs."""
    return await pool.fetchval("SELECT count(*) FROM item_results WHERE job_id = ANY($1::uuid[])", list(job_ids))


async def total_batches(pool: asyncpg.Pool, job_id: str) -> int:
    """How many batches intake split the job into."""
    return await pool.fetchval("SELECT total_batches FROM jobs WHERE job_id = $1::uuid", job_id)


async def first_result_at(pool: asyncpg.Pool, job_id: str) -> float:
    return await pool.fetchval(
        "SELECT extract(epoch FROM min(recorded_at))::float8 FROM item_results WHERE job_id = $1::uuid", job_id
    )


async def result_times(pool: asyncpg.Pool, job_ids: Sequence[str]) -> list[tuple[str, float]]:
    rows = await pool.fetch(
        "SELECT job_id::text, extract(epoch FROM recorded_at)::float8 AS at FROM item_results "
        "WHERE job_id = ANY($1::uuid[])",
        list(job_ids),
    )
    return [(row["job_id"], row["at"]) for row in rows]
