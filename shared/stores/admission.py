"""AdmissionStore: registers a job with its backlog in one transaction, under its tenant's admission lock."""

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

import asyncpg

from shared.errors import SluiceError
from shared.events import JobStatus
from shared.stores.jobs import AlreadyExists, Created, JobRecord, NewJob
from shared.stores.sweeps import job_timeout_option

_COLUMNS = ", ".join(JobRecord.model_fields)
TENANT_LOCK_SPACE = 0x51CE
"""First key of the two-key advisory lock (space, hashtext(tenant)) that serialises a tenant's admissions."""
BACKLOG_COLUMNS = ("job_id", "batch_index", "tenant", "priority", "kind", "items", "held", "payload", "headers")

BacklogRow = tuple[object, ...]
"""One task_backlog row in BACKLOG_COLUMNS order."""
Admission = tuple[NewJob, Callable[[int, int], JobStatus], Callable[[JobStatus], Iterable[BacklogRow]]]
"""(job, decide, backlog) as ``AdmissionStore.register`` takes them."""
Registered = Created | AlreadyExists | SluiceError
"""A job's outcome in a group: stored, found (same id or Idempotency-Key), or refused by ``decide``."""


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
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", TENANT_LOCK_SPACE, job.tenant)
            return await _register_locked(connection, job, decide, backlog)

    async def register_group(self, tenant: str, admissions: Sequence[Admission]) -> list[Registered]:
        """``register`` for several jobs of one tenant in ONE transaction (group commit): one lock, one commit.

        Each job is decided in turn, seeing the ones before it, so the counts are as if they came one by one. A
        job whose ``decide`` raises (e.g. WaitingLineFull) gets that exception in its place and the others go
        on; a database error fails the whole group (nothing is stored, every caller sees the error).
        """
        results: list[Registered] = []
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", TENANT_LOCK_SPACE, tenant)
            for job, decide, backlog in admissions:
                refused: list[SluiceError] = []

                def deciding(active: int, waiting: int, decide=decide, refused=refused) -> JobStatus:  # type: ignore[no-untyped-def]
                    try:
                        return decide(active, waiting)
                    except SluiceError as exc:
                        refused.append(exc)
                        raise

                try:
                    results.append(await _register_locked(connection, job, deciding, backlog))
                except SluiceError:
                    if not refused:  # not a refusal by decide (made before this job's statements): fail the group
                        raise
                    results.append(refused[0])
        return results

    async def promote_waiting(
        self, connection: asyncpg.Connection, tenant: str, decide: Callable[[int, int], int]
    ) -> int:
        """Start the tenant's oldest waiting jobs, as many as ``decide(active, waiting)`` allows; skipped (0) while
        an admission of the tenant holds its lock. Their batches are released from hold by ``unhold``."""
        async with connection.transaction():
            if not await connection.fetchval(
                "SELECT pg_try_advisory_xact_lock($1, hashtext($2))", TENANT_LOCK_SPACE, tenant
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
    return Created(JobRecord.model_validate(dict(row)))
