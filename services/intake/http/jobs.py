"""REST routes: decode, delegate, answer. Rules live in logic.py, side effects in accept.py and the stores."""

import csv
import io
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import JsonValue

from services.intake.http.auth import Tenant
from services.intake.http.errors import AUTHENTICATED, error_responses
from services.intake.logic import decode_cursor, encode_cursor, status_view
from services.intake.runtime import IntakeRuntime
from services.intake.submission.admission import Standing, queue_view
from services.intake.submission.submit import NDJSON, submit
from shared.errors import DependencyUnavailable, JobNotFound
from shared.kafka import SendWindow
from shared.records import JobRecord
from sluice.contracts.events import CancelJob, JobStatus
from sluice.contracts.headers import IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_MAX
from sluice.contracts.jobs import JobAccepted

log = logging.getLogger(__name__)
router = APIRouter()

CSV_COLUMNS = ("item_index", "status", "input", "output", "error", "error_type", "attempts", "duration_ms", "change")


async def runtime(request: Request) -> IntakeRuntime:
    # async on purpose: FastAPI runs a plain-def dependency in a worker thread, a thread hop per request.
    return request.app.state.runtime


Runtime = Annotated[IntakeRuntime, Depends(runtime)]


@router.post(
    "/v1/jobs", status_code=202, response_model=JobAccepted, responses=AUTHENTICATED | error_responses(413, 415)
)
async def submit_job(
    request: Request,
    tenant: Tenant,
    idempotency_key: Annotated[str | None, Header(alias=IDEMPOTENCY_KEY, max_length=IDEMPOTENCY_KEY_MAX)] = None,
) -> JSONResponse:
    """Submit a job as JSON ``{kind, items, ...}``, or as NDJSON items with kind etc. as query parameters."""
    return await submit(request, tenant, idempotency_key)


async def _visible_job(rt: IntakeRuntime, tenant: str, job_id: UUID) -> JobRecord:
    job = await rt.store.get(tenant, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


@router.get("/v1/jobs/{job_id}", responses=AUTHENTICATED | error_responses(404))
async def get_job(job_id: UUID, rt: Runtime, tenant: Tenant) -> dict[str, JsonValue]:
    job = await _visible_job(rt, tenant, job_id)
    return status_view(job, datetime.now(UTC)) | await _queue_fields(rt, job)


async def _queue_fields(rt: IntakeRuntime, job: JobRecord) -> dict[str, JsonValue]:
    """Position in the tenant's line and an ETA, while the job waits for a slot or has not started."""
    standing = None
    if job.status in (JobStatus.WAITING, JobStatus.QUEUED):
        standing = Standing(*await rt.admissions.standing(job.tenant, job.status, job.created_at))
    return queue_view(job.status, job.counts.pending, standing)


@router.delete("/v1/jobs/{job_id}", status_code=202, responses=AUTHENTICATED | error_responses(404))
async def cancel_job(job_id: UUID, rt: Runtime, tenant: Tenant) -> dict[str, JsonValue]:
    """Cancel: processors skip the job's remaining batches and the aggregator ends it as cancelled."""
    job = await _visible_job(rt, tenant, job_id)
    if job.status.is_terminal:
        return status_view(job, datetime.now(UTC))
    await rt.store.request_cancel(tenant, job_id)
    try:
        await rt.flags.mark(job_id)
    except DependencyUnavailable:
        log.info("cancellation of %s not flagged to processors (Redis unavailable): its remaining items run", job_id)
    window = SendWindow(rt.broker, 1, rt.settings.publish_stall_timeout_s)
    await window.send(
        CancelJob(tenant=tenant, job_id=job_id).model_dump_json().encode(),
        rt.settings.kafka.topics.results,
        key=str(job_id).encode(),
    )
    await window.flush()
    return status_view(await _visible_job(rt, tenant, job_id), datetime.now(UTC))


@router.get("/v1/jobs/{job_id}/results", responses=AUTHENTICATED | error_responses(400, 404))
async def get_results(
    job_id: UUID,
    rt: Runtime,
    tenant: Tenant,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, JsonValue]:
    """One page of results in item order; pass ``next_cursor`` back for the next page (null at the end)."""
    await _visible_job(rt, tenant, job_id)
    rows = await rt.store.results_page(job_id, decode_cursor(cursor), limit)
    items: list[JsonValue] = [_result_json(row) for row in rows]
    next_cursor = encode_cursor(rows[-1]["item_index"]) if len(rows) == limit else None
    return {"job_id": str(job_id), "items": items, "next_cursor": next_cursor, "limit": limit}


def _result_json(row: dict[str, Any]) -> dict[str, JsonValue]:
    return {
        "index": row["item_index"],
        "status": row["status"],
        "input": row["input"],
        "output": row["output"],
        "error": row["error"],
        "error_type": row["error_type"],
        "attempts": row["attempts"],
        "duration_ms": row["duration_ms"],
        "change": row.get("change"),
        "fingerprint": row.get("fingerprint"),
    }


@router.get(
    "/v1/jobs/{job_id}/results.ndjson",
    responses=AUTHENTICATED
    | error_responses(404)
    | {200: {"content": {NDJSON: {}}, "description": "One result a line"}},
)
async def export_ndjson(job_id: UUID, rt: Runtime, tenant: Tenant) -> StreamingResponse:
    await _visible_job(rt, tenant, job_id)

    async def lines() -> AsyncIterator[bytes]:
        async for page in rt.store.iter_results(job_id):
            yield b"".join(orjson.dumps(_result_json(row)) + b"\n" for row in page)

    return StreamingResponse(lines(), media_type=NDJSON)


@router.get(
    "/v1/jobs/{job_id}/results.csv",
    responses=AUTHENTICATED | error_responses(404) | {200: {"content": {"text/csv": {}}, "description": "CSV"}},
)
async def export_csv(job_id: UUID, rt: Runtime, tenant: Tenant) -> StreamingResponse:
    await _visible_job(rt, tenant, job_id)

    async def rows() -> AsyncIterator[str]:
        yield ",".join(CSV_COLUMNS) + "\r\n"
        async for page in rt.store.iter_results(job_id):
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            for row in page:
                writer.writerow(
                    [row[c] if c not in ("input", "output") else orjson.dumps(row[c]).decode() for c in CSV_COLUMNS]
                )
            yield buffer.getvalue()

    headers = {"Content-Disposition": f'attachment; filename="{job_id}.csv"'}
    return StreamingResponse(rows(), media_type="text/csv", headers=headers)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(rt: Runtime, response: Response) -> dict[str, JsonValue]:
    """Ready when Postgres and the broker answer; Redis is reported but only degrades cancellation."""
    checks: dict[str, JsonValue] = {}
    try:
        await rt.pool.fetchval("SELECT 1", timeout=2)
        checks["postgres"] = "ok"
    except Exception as exc:  # reported in the body, not raised: this endpoint's job is to say what is down
        checks["postgres"] = f"down: {type(exc).__name__}"
    checks["kafka"] = "ok" if await rt.broker.ping(timeout=2) else "down"
    try:
        await rt.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # as above
        checks["redis"] = f"down: {type(exc).__name__}"
    ready = checks["postgres"] == "ok" and checks["kafka"] == "ok"
    response.status_code = 200 if ready else 503
    if not ready:
        response.headers["Retry-After"] = "5"
    return {"ready": ready, "checks": checks}
