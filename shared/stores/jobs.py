"""JobStore: the job registry intake writes before publishing, and reads for status and results."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from shared.records import JobRecord, NewJob, job_timeout_option
from sluice.contracts.events import TERMINAL_STATUSES


@dataclass(frozen=True)
class Created:
    job: JobRecord


@dataclass(frozen=True)
class AlreadyExists:
    """The same job id, or the same tenant and Idempotency-Key, was seen before."""

    job: JobRecord


_COLUMNS = ", ".join(JobRecord.model_fields)


def _record(row: asyncpg.Record) -> JobRecord:
    return JobRecord.model_validate(dict(row))


class JobStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, job: NewJob) -> Created | AlreadyExists:
        """Insert the job unless its id or (tenant, idempotency key) exists; then return the existing one."""
        async with self._pool.acquire() as connection:
            row = await connection.fetchrow(
                f"""INSERT INTO jobs (job_id, tenant, kind, priority, options, callback_url, source,
                                      idempotency_key, request_fingerprint, total_items, total_batches, deadline_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now() + $12::float8 * interval '1 second')
                    ON CONFLICT DO NOTHING
                    RETURNING {_COLUMNS}""",
                job.job_id, job.tenant, job.kind, job.priority.value, job.options, job.callback_url, job.source,
                job.idempotency_key, job.request_fingerprint, job.total_items, job.total_batches,
                job_timeout_option(job.options),  # without it, the scheduler stamps its default deadline
            )  # fmt: skip
            if row is not None:
                return Created(_record(row))
            existing = await connection.fetchrow(
                f"""SELECT {_COLUMNS} FROM jobs
                    WHERE job_id = $1 OR (tenant = $2 AND idempotency_key = $3)
                    ORDER BY (job_id = $1) DESC LIMIT 1""",
                job.job_id, job.tenant, job.idempotency_key,
            )  # fmt: skip
        if existing is None:  # deleted between the two statements: vanishingly rare, so just retry once
            return await self.create(job)
        return AlreadyExists(_record(existing))

    async def mark_accepted(self, job_id: UUID) -> None:
        await self._pool.execute("UPDATE jobs SET accepted_at = coalesce(accepted_at, now()) WHERE job_id = $1", job_id)

    async def mark_rejected(self, job_id: UUID, reason: str) -> None:
        """The job could not be published: it ends failed and its Idempotency-Key is free for a retry."""
        await self._pool.execute(
            """UPDATE jobs SET status = 'failed', error = $2, finished_at = now(), idempotency_key = NULL
               WHERE job_id = $1 AND status <> ALL($3::text[])""",
            job_id, reason, TERMINAL_STATUSES,
        )  # fmt: skip

    async def get(self, tenant: str, job_id: UUID) -> JobRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM jobs WHERE job_id = $1 AND tenant = $2", job_id, tenant
        )
        return None if row is None else _record(row)

    async def request_cancel(self, tenant: str, job_id: UUID) -> JobRecord | None:
        row = await self._pool.fetchrow(
            f"""UPDATE jobs SET cancel_requested_at = coalesce(cancel_requested_at, now())
                WHERE job_id = $1 AND tenant = $2 RETURNING {_COLUMNS}""",
            job_id, tenant,
        )  # fmt: skip
        return None if row is None else _record(row)

    async def results_page(self, job_id: UUID, after_index: int, limit: int) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            f"""SELECT {_RESULT_COLUMNS} FROM item_results
                WHERE job_id = $1 AND item_index > $2 ORDER BY item_index LIMIT $3""",
            job_id, after_index, limit,
        )  # fmt: skip
        return [dict(row) for row in rows]

    async def iter_results(self, job_id: UUID, chunk: int = 1000) -> AsyncIterator[list[dict[str, Any]]]:
        """Every result of a job in index order, ``chunk`` rows at a time (constant memory)."""
        after = -1
        while True:
            page = await self.results_page(job_id, after, chunk)
            if not page:
                return
            yield page
            after = page[-1]["item_index"]


_RESULT_COLUMNS = (
    "item_index, status, input, output, error, error_type, attempts, duration_ms, recorded_at, change, fingerprint"
)
