"""Listing a tenant's jobs newest first, in keyset pages over (created_at, job_id)."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from shared.records import JobRecord
from shared.stores.jobs import _COLUMNS, _record


@dataclass(frozen=True)
class JobListFilter:
    tenant: str
    status: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class JobKey:
    """A page ends at this job; the next page starts strictly after it."""

    created_at: datetime
    job_id: UUID


async def list_jobs(pool: asyncpg.Pool, flt: JobListFilter, after: JobKey | None, limit: int) -> list[JobRecord]:
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM jobs
            WHERE tenant = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR kind = $3)
              AND ($4::timestamptz IS NULL OR (created_at, job_id) < ($4, $5))
            ORDER BY created_at DESC, job_id DESC LIMIT $6""",
        flt.tenant, flt.status, flt.kind,
        after.created_at if after else None, after.job_id if after else None, limit,
    )  # fmt: skip
    return [_record(row) for row in rows]
