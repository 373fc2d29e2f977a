"""AdmissionStore: registers a job with its backlog in one transaction, under its tenant's admission lock."""

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from shared.errors import SluiceError
from shared.events import JobStatus
from shared.stores.backlog import BACKLOG_CHANNEL, signal_backlog_changed
from shared.stores.jobs import AlreadyExists, Created, JobRecord, NewJob
from shared.stores.sweeps import job_timeout_option

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
Admission = tuple[NewJob, Callable[[int, int], JobStatus], Callable[[JobStatus], Iterable[BacklogRow]]]
"""(job, decide, backlog) as ``AdmissionStore.register`` takes them."""
Registered = Created | AlreadyExists | SluiceError
"""A job's outcome in a group: stored, found (same id or Idempotency-Key), or refused by ``decide``."""


def _load(row: asyncpg.Record) -> tuple[int, int]:
    return row["active"], row["waiting"]


_FIELDS = tuple(JobRecord.model_fields)
_GROUP_LOOKUP = f"""
    WITH load AS (
        SELECT count(*) FILTER (WHERE status IN ('queued', 'running')) AS active,
               count(*) FILTER (WHERE status = 'waiting') AS waiting
        FROM jobs WHERE tenant = $2 AND status IN ('waiting', 'queued', 'running'))
    SELECT load.active AS load_active, load.waiting AS load_waiting, found.*
    FROM load LEFT JOIN (
        SELECT {_COLUMNS} FROM jobs
        WHERE job_id = ANY($1::uuid[]) OR (tenant = $2 AND idempotency_key = ANY($3::text[]))) AS found ON true"""
"""The jobs a group repeats (same id or Idempotency-Key), one row each, and the tenant's load on every row (one row
with no job when none is repeated)."""

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

    async def register_group(self, tenant: str, admissions: Sequence[Admission]) -> list[Registered]:
        """``register`` for several jobs of one tenant in ONE transaction (group commit): one lock, one commit,
        and four round trips whatever the group's size (begin and lock; existing jobs and the tenant's load; the
        jobs and their batches, inserted together, not by COPY, since a group's batches are few and a COPY is
        two round trips more; commit).

        The jobs are decided in order, each seeing the ones before it, so the counts are as if they came one by
        one; a later job with the Idempotency-Key (or id) of an earlier one gets that one. A job whose ``decide``
        raises (e.g. WaitingLineFull) gets that exception in its place and the others go on; a database error
        fails the whole group (nothing is stored, every caller sees the error).
        """
        jobs = [job for job, _, _ in admissions]
        async with self._pool.acquire() as connection, _tenant_locked(connection, tenant):
            rows = await connection.fetch(
                _GROUP_LOOKUP,
                [job.job_id for job in jobs], tenant, [job.idempotency_key for job in jobs if job.idempotency_key],
            )  # fmt: skip
            load = [rows[0]["load_active"], rows[0]["load_waiting"]]
            stored = [JobRecord.model_validate({name: row[name] for name in _FIELDS}) for row in rows if row["job_id"]]
            plan: list[_Decided | Registered | _Repeat] = []
            for job, decide, _ in admissions:
                if (earlier := _same_job(job, stored, plan)) is not None:
                    plan.append(earlier)
                    continue
                try:
                    status = decide(*load)
                except SluiceError as exc:
                    plan.append(exc)
                    continue
                load[0 if status is JobStatus.QUEUED else 1] += 1
                plan.append(_Decided(job, status))
            decided = [step for step in plan if isinstance(step, _Decided)]
            backlog_rows = [
                row
                for (_, _, backlog), step in zip(admissions, plan, strict=True)
                if isinstance(step, _Decided)
                for row in backlog(step.status)
            ]
            created = await _insert_jobs(connection, decided, backlog_rows)
        return [_outcome(step, created) for step in plan]

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


@dataclass(frozen=True)
class _Decided:
    job: NewJob
    status: JobStatus


@dataclass(frozen=True)
class _Repeat:
    """A job whose id or Idempotency-Key an earlier job of the same group has."""

    job_id: UUID


def _same_job(
    job: NewJob, stored: list[JobRecord], plan: list["_Decided | Registered | _Repeat"]
) -> AlreadyExists | _Repeat | None:
    def same(other: NewJob) -> bool:
        return other.job_id == job.job_id or (
            job.idempotency_key is not None and other.idempotency_key == job.idempotency_key
        )

    by_id = [record for record in stored if record.job_id == job.job_id]
    if found := by_id or [record for record in stored if same(record)]:
        return AlreadyExists(found[0])
    for step in plan:
        if isinstance(step, _Decided) and same(step.job):
            return _Repeat(step.job.job_id)
    return None


def _outcome(step: "_Decided | Registered | _Repeat", created: dict[UUID, JobRecord]) -> Registered:
    if isinstance(step, _Decided):
        return Created(created[step.job.job_id])
    if isinstance(step, _Repeat):
        return AlreadyExists(created[step.job_id])
    return step


async def _insert_jobs(
    connection: asyncpg.Connection, decided: Sequence[_Decided], backlog_rows: Sequence[BacklogRow]
) -> dict[UUID, JobRecord]:
    """Insert the jobs and their backlog rows in one statement, which also wakes the dispatcher when the transaction
    commits (``signal_backlog_changed``, without a round trip of its own); the jobs' stored records by job id."""
    if not decided:
        return {}
    jobs = [step.job for step in decided]
    batches = [list(column) for column in zip(*backlog_rows, strict=True)] or [[] for _ in BACKLOG_COLUMNS]
    rows = await connection.fetch(
        f"""WITH inserted AS (
                INSERT INTO jobs (job_id, tenant, kind, priority, options, callback_url, source, idempotency_key,
                                  request_fingerprint, total_items, total_batches, deadline_at, status, accepted_at)
                SELECT j.job_id, j.tenant, j.kind, j.priority, j.options, j.callback_url, j.source,
                       j.idempotency_key, j.request_fingerprint, j.total_items, j.total_batches,
                       now() + j.timeout_s * interval '1 second', j.status, now()
                FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[],
                            $8::text[], $9::text[], $10::int[], $11::int[], $12::float8[], $13::text[])
                     AS j(job_id, tenant, kind, priority, options, callback_url, source, idempotency_key,
                          request_fingerprint, total_items, total_batches, timeout_s, status)
                RETURNING {_COLUMNS}),
            batches AS (
                INSERT INTO task_backlog ({", ".join(BACKLOG_COLUMNS)})
                SELECT * FROM unnest($14::uuid[], $15::int[], $16::text[], $17::text[], $18::text[], $19::int[],
                                     $20::bool[], $21::bytea[], $22::bytea[]))
            SELECT inserted.*, pg_notify($23, '') AS backlog_changed FROM inserted""",
        [j.job_id for j in jobs], [j.tenant for j in jobs], [j.kind for j in jobs], [j.priority.value for j in jobs],
        [j.options for j in jobs], [j.callback_url for j in jobs], [j.source for j in jobs],
        [j.idempotency_key for j in jobs], [j.request_fingerprint for j in jobs], [j.total_items for j in jobs],
        [j.total_batches for j in jobs], [job_timeout_option(j.options) for j in jobs],
        [step.status.value for step in decided], *batches, BACKLOG_CHANNEL,
    )  # fmt: skip
    return {row["job_id"]: JobRecord.model_validate(dict(row)) for row in rows}
