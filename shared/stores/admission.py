"""AdmissionStore: registers a job with its backlog in one transaction, under its tenant's admission lock."""

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.errors import WaitingLineFull
from shared.records import JobRecord, NewJob, job_timeout_option
from shared.stores.backlog import BACKLOG_CHANNEL, signal_backlog_changed
from shared.stores.jobs import AlreadyExists, Created
from sluice.contracts.events import JobStatus

_COLUMNS = ", ".join(JobRecord.model_fields)
TENANT_LOCK_SPACE = 0x51CE
"""First key of the two-key advisory lock (space, tenant_lock_key(tenant)) that serialises a tenant's admissions."""


def tenant_lock_key(tenant: str) -> int:
    """Second key of a tenant's admission lock: a signed 32-bit hash of its name, computed here (not by the
    database) so the lock can be written into the query that begins the transaction."""
    return int.from_bytes(hashlib.blake2b(tenant.encode(), digest_size=4).digest(), "big", signed=True)


@asynccontextmanager
async def _tenant_locked(connection: asyncpg.Connection, tenant: str) -> AsyncIterator[None]:
    """A transaction that holds the tenant's admission lock, begun in one round trip: BEGIN and the lock go as one
    query (two integers written into it, nothing quoted); committed when the block ends, rolled back if it
    raises."""
    await connection.execute(f"BEGIN; SELECT pg_advisory_xact_lock({TENANT_LOCK_SPACE}, {tenant_lock_key(tenant)})")
    try:
        yield
    except BaseException:
        if not connection.is_closed():
            with contextlib.suppress(Exception):  # a broken connection is discarded by the pool anyway
                await connection.execute("ROLLBACK")
        raise
    await connection.execute("COMMIT")


BACKLOG_COLUMNS = ("job_id", "batch_index", "tenant", "priority", "kind", "items", "held", "payload", "headers")

BacklogRow = tuple[object, ...]
"""One task_backlog row in BACKLOG_COLUMNS order."""
Registered = Created | AlreadyExists | WaitingLineFull
"""A job's outcome in a group: stored, found (same id or Idempotency-Key), or refused (WaitingLineFull)."""


@dataclass(frozen=True)
class AdmissionLimits:
    """A tenant's plan as admission applies it: queued while fewer than ``max_active_jobs`` are queued or running,
    else waiting while fewer than ``max_waiting_jobs`` wait, else refused, to retry after ``retry_after_s``."""

    max_active_jobs: int
    max_waiting_jobs: int
    retry_after_s: int


@dataclass(frozen=True)
class GroupEntry:
    """One job of a group: its row, its tenant's limits, and its batches as (batch_index, items, payload), all
    published with ``headers``; the database decides whether they are held (while the job waits)."""

    job: NewJob
    limits: AdmissionLimits
    batches: Sequence[tuple[int, int, bytes]]
    headers: bytes


def _load(row: asyncpg.Record) -> tuple[int, int]:
    return row["active"], row["waiting"]


_TENANT_LOAD = """SELECT count(*) FILTER (WHERE status IN ('queued', 'running')) AS active,
                         count(*) FILTER (WHERE status = 'waiting') AS waiting
                  FROM jobs WHERE tenant = $1 AND status IN ('waiting', 'queued', 'running')"""


class AdmissionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def register(
        self,
        job: NewJob,
        decide: Callable[[int, int], JobStatus],
        backlog: Callable[[JobStatus], Iterable[BacklogRow]],
    ) -> Created | AlreadyExists:
        """Admit a job: one transaction, so the 202 that follows means the job and every batch are durable.

        1. take the tenant's admission lock (transaction-scoped), so concurrent submissions count right;
        2. an existing job with the same id or (tenant, Idempotency-Key) is returned as it is;
        3. ``decide(active, waiting)`` gives the new job's status (QUEUED or WAITING) or raises;
        4. insert the job row, accepted, and COPY its batches into the backlog (held while it waits);
        5. commit. Any error before 5 leaves nothing behind.
        """
        async with self._pool.acquire() as connection, _tenant_locked(connection, job.tenant):
            return await _register_locked(connection, job, decide, backlog)

    async def register_group(self, tenant: str, entries: Sequence[GroupEntry]) -> list[Registered]:
        """``register`` for several jobs of one tenant in ONE statement and its commit (group commit): the function
        ``sluice_admit_group`` (migration 011) takes the tenant's lock, reads its load, and decides, stores or
        finds each job in order, each seeing the ones before it, so the counts are as if they came one by one; a
        later job with the Idempotency-Key (or id) of an earlier one gets that one. A refused job gets
        WaitingLineFull in its place and the others go on; a database error fails the whole group (nothing is
        stored, every caller sees the error). Each round trip of the four this took in a transaction cost
        milliseconds on a busy box, all spent holding the tenant's lock.
        """
        jobs = [entry.job for entry in entries]
        batches = [
            (ordinal, *batch, entry.headers)
            for ordinal, entry in enumerate(entries, start=1)
            for batch in entry.batches
        ]
        batch_columns = [list(column) for column in zip(*batches, strict=True)] or [[] for _ in range(5)]
        rows = await self._pool.fetch(
            "SELECT ordinal, outcome, job FROM sluice_admit_group("
            + ", ".join(f"${n}" for n in range(1, 23)) + ")",
            TENANT_LOCK_SPACE, tenant_lock_key(tenant), tenant, BACKLOG_CHANNEL,
            [j.job_id for j in jobs], [j.kind for j in jobs], [j.priority.value for j in jobs],
            [j.options for j in jobs], [j.callback_url for j in jobs], [j.source for j in jobs],
            [j.idempotency_key for j in jobs], [j.request_fingerprint for j in jobs], [j.total_items for j in jobs],
            [j.total_batches for j in jobs], [job_timeout_option(j.options) for j in jobs],
            [e.limits.max_active_jobs for e in entries], [e.limits.max_waiting_jobs for e in entries],
            *batch_columns,
        )  # fmt: skip
        return [_group_outcome(row, entries[row["ordinal"] - 1].limits) for row in sorted(rows, key=_ordinal)]

    async def promote_waiting(
        self, connection: asyncpg.Connection, tenant: str, decide: Callable[[int, int], int]
    ) -> int:
        """Start the tenant's oldest waiting jobs, as many as ``decide(active, waiting)`` allows; skipped (0) while
        an admission of the tenant holds its lock. Their batches are released from hold by ``unhold``."""
        async with connection.transaction():
            if not await connection.fetchval(
                "SELECT pg_try_advisory_xact_lock($1, $2)", TENANT_LOCK_SPACE, tenant_lock_key(tenant)
            ):
                return 0
            count = decide(*_load(await connection.fetchrow(_TENANT_LOAD, tenant)))
            if count <= 0:
                return 0
            return len(
                await connection.fetch(
                    """UPDATE jobs SET status = 'queued' WHERE job_id IN (
                           SELECT job_id FROM jobs WHERE tenant = $1 AND status = 'waiting'
                           ORDER BY created_at, job_id LIMIT $2)
                       RETURNING job_id""",
                    tenant,
                    count,
                )  # fmt: skip
            )

    async def tenants_waiting(self, connection: asyncpg.Connection) -> list[str]:
        rows = await connection.fetch("SELECT DISTINCT tenant FROM jobs WHERE status = 'waiting'")
        return [row["tenant"] for row in rows]

    async def standing(self, tenant: str, status: JobStatus, created_at: datetime) -> tuple[int, int, float]:
        """(jobs ahead of the same status, unfinished items of earlier unfinished jobs, the tenant's items/s)."""
        row = await self._pool.fetchrow(
            """SELECT count(*) FILTER (WHERE status = $2 AND started_at IS NULL AND created_at < $3) AS jobs_ahead,
                      coalesce(sum(total_items - succeeded - failed - cancelled - timed_out)
                               FILTER (WHERE created_at < $3), 0) AS items_ahead,
                      coalesce(sum((succeeded + failed + cancelled + timed_out)
                                   / greatest(extract(epoch FROM now() - started_at), 0.001))
                               FILTER (WHERE status = 'running' AND started_at IS NOT NULL), 0)::float8 AS rate
               FROM jobs WHERE tenant = $1 AND status IN ('waiting', 'queued', 'running')""",
            tenant, status.value, created_at,
        )  # fmt: skip
        return row["jobs_ahead"], row["items_ahead"], row["rate"]


async def _register_locked(
    connection: asyncpg.Connection,
    job: NewJob,
    decide: Callable[[int, int], JobStatus],
    backlog: Callable[[JobStatus], Iterable[BacklogRow]],
) -> Created | AlreadyExists:
    """Steps 2-4 of ``register``, on a connection whose transaction holds the tenant's admission lock."""
    existing = await connection.fetchrow(
        f"""SELECT {_COLUMNS} FROM jobs
            WHERE job_id = $1 OR (tenant = $2 AND idempotency_key = $3)
            ORDER BY (job_id = $1) DESC LIMIT 1""",
        job.job_id, job.tenant, job.idempotency_key,
    )  # fmt: skip
    if existing is not None:
        return AlreadyExists(JobRecord.model_validate(dict(existing)))
    status = decide(*_load(await connection.fetchrow(_TENANT_LOAD, job.tenant)))
    row = await connection.fetchrow(
        f"""INSERT INTO jobs (job_id, tenant, kind, priority, options, callback_url, source, idempotency_key,
                              request_fingerprint, total_items, total_batches, deadline_at, status, accepted_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                    now() + $12::float8 * interval '1 second', $13, now())
            RETURNING {_COLUMNS}""",
        job.job_id, job.tenant, job.kind, job.priority.value, job.options, job.callback_url, job.source,
        job.idempotency_key, job.request_fingerprint, job.total_items, job.total_batches,
        job_timeout_option(job.options), status.value,
    )  # fmt: skip
    await connection.copy_records_to_table("task_backlog", records=backlog(status), columns=BACKLOG_COLUMNS)
    await signal_backlog_changed(connection)
    return Created(JobRecord.model_validate(dict(row)))


def _ordinal(row: asyncpg.Record) -> int:
    return row["ordinal"]


def _group_outcome(row: asyncpg.Record, limits: AdmissionLimits) -> Registered:
    if row["outcome"] == "refused":
        return WaitingLineFull(limits.max_waiting_jobs, retry_after_s=limits.retry_after_s)
    record = JobRecord.model_validate(row["job"])
    return Created(record) if row["outcome"] == "created" else AlreadyExists(record)
