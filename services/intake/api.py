"""REST routes: decode, delegate, answer. Rules live in logic.py, side effects in accept.py and the stores."""

import csv
import io
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID, uuid4

import msgspec
import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import JsonValue, ValidationError
from redis.exceptions import RedisError

from services.intake.accept import Acceptance, JobDraft
from services.intake.admission import Standing, queue_view
from services.intake.auth import Tenant
from services.intake.errors import AUTHENTICATED, error_responses
from services.intake.item_json import encode_item
from services.intake.limits import batch_size_for, check_items, check_priority, naming_plan_limits
from services.intake.logic import (
    Fingerprint,
    decode_cursor,
    encode_cursor,
    item_rule,
    resolve_kind,
    status_view,
    validate_item,
    validate_options,
)
from services.intake.models import JobAccepted, JobParameters, JobSubmission
from services.intake.runtime import IntakeRuntime
from services.intake.spool import spool_ndjson
from services.intake.watch_models import RescanSpec
from services.intake.watching import watch_job
from shared.errors import InvalidJob, JobNotFound, LimitExceeded
from shared.events import CancelJob, JobStatus
from shared.kafka import SendWindow
from shared.stores.jobs import JobRecord

log = logging.getLogger(__name__)
encode_json = msgspec.json.Encoder().encode
router = APIRouter()

NDJSON = "application/x-ndjson"
CSV_COLUMNS = ("item_index", "status", "input", "output", "error", "error_type", "attempts", "duration_ms", "change")


async def runtime(request: Request) -> IntakeRuntime:
    # async on purpose: FastAPI runs a plain-def dependency in a worker thread, a thread hop per request.
    return request.app.state.runtime


Runtime = Annotated[IntakeRuntime, Depends(runtime)]


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise LimitExceeded("body_bytes", int(declared), limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise LimitExceeded("body_bytes", len(body), limit)
    return bytes(body)


def _accepted_answer(request: Request, acceptance: Acceptance, watch_id: UUID | None = None) -> JSONResponse:
    job = acceptance.job
    status_url = f"{str(request.base_url).rstrip('/')}/v1/jobs/{job.job_id}"
    body = {  # JobAccepted's fields in its order (the model documents the answer; none is built per request)
        "job_id": str(job.job_id), "status_url": status_url, "results_url": f"{status_url}/results",
        "total_items": job.total_items, "total_batches": job.total_batches,
        "watch_id": str(watch_id) if watch_id else None, "status": job.status.value,
    }  # fmt: skip
    headers = {"Location": status_url}
    if acceptance.replayed:
        headers["Idempotent-Replayed"] = "true"
    return CompactJSONResponse(body, status_code=202, headers=headers)


class CompactJSONResponse(JSONResponse):
    """JSONResponse's bytes, encoded by msgspec instead of the standard library's json."""

    def render(self, content: object) -> bytes:
        return encode_json(content)


@router.post(
    "/v1/jobs", status_code=202, response_model=JobAccepted, responses=AUTHENTICATED | error_responses(413, 415)
)
async def submit_job(
    request: Request,
    tenant: Tenant,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> JSONResponse:
    """Submit a job as JSON ``{kind, items, ...}``, or as NDJSON items with kind etc. as query parameters."""
    rt: IntakeRuntime = request.app.state.runtime  # not a dependency: each one costs per request
    settings = rt.settings
    plan = await rt.plans.plan_for(tenant)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type == NDJSON:
        params = _ndjson_parameters(request)
        check_priority(plan, params.priority)
        kind = resolve_kind(rt.kinds, params.kind)
        options = validate_options(kind, params.options)
        callback = str(params.callback_url) if params.callback_url else None
        fingerprint = Fingerprint(kind.name, options, params.priority, callback)
        with naming_plan_limits(plan):
            spool = await spool_ndjson(
                request.stream(),
                validate=item_rule(kind),
                fingerprint=fingerprint,
                max_items=min(settings.max_items_per_job, plan.max_items_per_job),
                max_line_bytes=settings.max_item_bytes * 2,
                max_item_bytes=settings.max_item_bytes,
                memory_bytes=settings.spool_memory_bytes,
            )
        try:
            draft = _draft(
                tenant, kind.name, options, params.priority, callback, idempotency_key, fingerprint, spool.count
            )
            draft = replace(draft, batch_size=batch_size_for(plan, settings.batch_size, kind.batch_size))
            acceptance = await rt.acceptor.accept(draft, spool.encoded)
            watch_id = await _watch(rt, tenant, params.rescan, acceptance, spool.items)
        finally:
            spool.close()
        return _accepted_answer(request, acceptance, watch_id)
    if content_type != "application/json":
        raise InvalidJob(f"Content-Type must be application/json or {NDJSON}", field="Content-Type", status=415)
    submission = _parse_submission(await _read_capped(request, settings.max_json_body_bytes))
    if len(submission.items) > settings.max_json_items:
        raise LimitExceeded("items", len(submission.items), settings.max_json_items)
    check_items(plan, len(submission.items))
    check_priority(plan, submission.priority)
    kind = resolve_kind(rt.kinds, submission.kind)
    options = validate_options(kind, submission.options)
    callback = str(submission.callback_url) if submission.callback_url else None
    fingerprint = Fingerprint(kind.name, options, submission.priority, callback)
    items = [validate_item(kind, index, item, settings.max_item_bytes) for index, item in enumerate(submission.items)]
    for item in items:
        fingerprint.add_item(item)
    draft = _draft(tenant, kind.name, options, submission.priority, callback, idempotency_key, fingerprint, len(items))
    draft = replace(draft, batch_size=batch_size_for(plan, settings.batch_size, kind.batch_size))
    acceptance = await rt.acceptor.accept(draft, lambda: map(encode_item, items), grouped=True)
    watch_id = await _watch(rt, tenant, submission.rescan, acceptance, lambda: items)
    return _accepted_answer(request, acceptance, watch_id)


async def _watch(
    rt: IntakeRuntime, tenant: str, spec: RescanSpec | None, acceptance: Acceptance,
    items: Callable[[], Iterable[JsonValue]],
) -> UUID | None:  # fmt: skip
    if spec is None:
        return None
    job = acceptance.job
    return await watch_job(rt, tenant, spec, job.job_id, job.kind, job.options, job.priority, items())


def _draft(
    tenant: str, kind: str, options: dict[str, JsonValue], priority: object, callback: str | None,
    idempotency_key: str | None, fingerprint: Fingerprint, total: int,
) -> JobDraft:  # fmt: skip
    return JobDraft(
        job_id=uuid4(), tenant=tenant, kind=kind, options=options, priority=priority, callback_url=callback,  # type: ignore[arg-type]
        source="rest", idempotency_key=idempotency_key, fingerprint=fingerprint.hexdigest(), total_items=total,
    )  # fmt: skip


def _parse_submission(body: bytes) -> JobSubmission:
    try:
        return JobSubmission.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidJob(f"{field or 'body'}: {first['msg']}", field=field) from exc


def _ndjson_parameters(request: Request) -> JobParameters:
    query = dict(request.query_params)
    for name in ("options", "rescan"):
        if name in query:
            try:
                query[name] = orjson.loads(query[name])
            except orjson.JSONDecodeError as exc:
                raise InvalidJob(f"query parameter {name} must be a JSON object", field=name) from exc
    try:
        return JobParameters.model_validate(query)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidJob(f"query parameter {field}: {first['msg']}", field=field) from exc


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
    except (RedisError, OSError) as exc:
        log.warning("could not set the cancellation flag for %s (remaining items will still run): %s", job_id, exc)
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
    items = [_result_json(row) for row in rows]
    next_cursor = encode_cursor(rows[-1]["item_index"]) if len(rows) == limit else None
    return {"job_id": str(job_id), "items": items, "next_cursor": next_cursor, "limit": limit}


def _result_json(row: dict[str, object]) -> dict[str, JsonValue]:
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
    }  # type: ignore[return-value]


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
