"""POST /v1/jobs: validating a JSON or NDJSON submission, accepting it and the 202 (its routes: http/jobs.py and
http/fast_submit.py)."""

from collections.abc import Callable, Iterable
from dataclasses import replace
from uuid import UUID, uuid4

import msgspec
import orjson
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import JsonValue, ValidationError

from services.intake.logic import Fingerprint, item_rule, resolve_kind, validate_item, validate_options
from services.intake.runtime import IntakeRuntime
from services.intake.submission.accept import Acceptance, JobDraft
from services.intake.submission.item_json import encode_item
from services.intake.submission.limits import batch_size_for, check_items, check_priority, naming_plan_limits
from services.intake.submission.models import JobParameters, JobSubmission
from services.intake.submission.spool import spool_ndjson
from services.intake.watches.on_submit import watch_job
from services.intake.watches.spec import RescanSpec
from shared.errors import InvalidJob, LimitExceeded

NDJSON = "application/x-ndjson"
encode_json = msgspec.json.Encoder().encode


async def submit(request: Request, tenant: str, idempotency_key: str | None) -> JSONResponse:
    """POST /v1/jobs for an authenticated, counted tenant: validate, accept, answer 202 (or raise for the 4xx)."""
    rt: IntakeRuntime = request.app.state.runtime
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
