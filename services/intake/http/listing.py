"""GET /v1/jobs: the caller's jobs, newest first, in keyset pages."""

import base64
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import JsonValue

from services.intake.http.errors import AUTHENTICATED, error_responses
from services.intake.http.jobs import Runtime, Tenant
from services.intake.logic import status_view
from shared.errors import InvalidJob
from shared.stores.job_list import JobKey, JobListFilter, list_jobs
from sluice.contracts.events import JobStatus

router = APIRouter(tags=["jobs"], responses=AUTHENTICATED | error_responses(400))


def encode_job_cursor(key: JobKey) -> str:
    return base64.urlsafe_b64encode(f"j:{key.created_at.isoformat()}|{key.job_id}".encode()).decode().rstrip("=")


def decode_job_cursor(cursor: str | None) -> JobKey | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, rest = text.split(":", 1)
        created, job_id = rest.rsplit("|", 1)
        key = JobKey(datetime.fromisoformat(created), UUID(job_id))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJob("cursor is not one this API returned", field="cursor", status=400) from exc
    if prefix != "j" or key.created_at.tzinfo is None:
        raise InvalidJob("cursor is not one this API returned", field="cursor", status=400)
    return key


@router.get("/v1/jobs")
async def get_jobs(
    rt: Runtime,
    tenant: Tenant,
    status: JobStatus | None = None,
    kind: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> dict[str, JsonValue]:
    """One page of the tenant's jobs, newest first; pass ``next_cursor`` back for the next (null at the end)."""
    flt = JobListFilter(tenant=tenant, status=status.value if status else None, kind=kind)
    jobs = await list_jobs(rt.pool, flt, decode_job_cursor(cursor), limit)
    now = datetime.now(UTC)
    last = jobs[-1] if len(jobs) == limit else None
    next_cursor = encode_job_cursor(JobKey(last.created_at, last.job_id)) if last else None
    return {"jobs": [status_view(job, now) for job in jobs], "next_cursor": next_cursor}
