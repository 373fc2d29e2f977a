"""REST routes for watches: list, show, pause, resume, change and delete, scoped to the caller's tenant.

A watch is created by ``rescan`` on POST /v1/jobs (services/intake/watches/on_submit.py) or later by POST /v1/watches
for a finished job; the scheduler rescans it.
"""

from datetime import datetime
from typing import Annotated, cast
from uuid import UUID

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from services.intake.http.errors import AUTHENTICATED, error_body, error_responses
from services.intake.http.jobs import Runtime, Tenant
from services.intake.watches.on_submit import watch_job
from services.intake.watches.spec import RescanSpec, spec_of
from shared.errors import InvalidJob, JobNotFound
from shared.stores.watches import MAX_PAGE, WatchRecord, WatchStore

router = APIRouter(prefix="/v1/watches", tags=["watches"], responses=AUTHENTICATED | error_responses(404))


def _view(watch: WatchRecord) -> dict[str, JsonValue]:
    return {
        "watch_id": str(watch.watch_id),
        "kind": watch.kind,
        "priority": watch.priority,
        "rescan": spec_of(watch.config),  # type: ignore[dict-item]
        "paused": watch.paused,
        "items": watch.items,
        "scans": watch.scans,
        "next_due": watch.next_due.isoformat() if watch.next_due else None,
        "source_job_id": str(watch.source_job_id) if watch.source_job_id else None,
        "escalations": watch.escalations,
        "last_sample": watch.last_sample,
        "created_at": watch.created_at.isoformat(),
    }


def _not_found(watch_id: UUID) -> JSONResponse:
    return JSONResponse(error_body("not_found", f"watch {watch_id} not found"), status_code=404)


@router.get("")
async def list_watches(
    rt: Runtime,
    tenant: Tenant,
    cursor: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict[str, JsonValue]:
    """One page of the tenant's watches; pass ``next_cursor`` back for the next (null at the end)."""
    watches = await WatchStore(rt.pool).page(tenant, cursor, limit)
    next_cursor = str(watches[-1].watch_id) if len(watches) == limit else None
    return {"watches": [_view(w) for w in watches], "next_cursor": next_cursor, "limit": limit}


class WatchJob(BaseModel):
    """Body of POST /v1/watches: watch the items of a job submitted earlier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: UUID
    rescan: RescanSpec


@router.post("", status_code=201, response_model=None)
async def watch_earlier_job(rt: Runtime, body: WatchJob, tenant: Tenant) -> dict[str, JsonValue] | JSONResponse:
    """Watch a finished job's items (their inputs as stored with the results); the watch takes the job's id."""
    job = await rt.store.get(tenant, body.job_id)
    if job is None:
        raise JobNotFound(body.job_id)
    if not job.status.is_terminal:
        raise InvalidJob(f"job {job.job_id} is still {job.status.value}; watch it once it has finished", field="job_id",
                         status=409)  # fmt: skip
    store = WatchStore(rt.pool)
    if await store.get(tenant, job.job_id) is not None:
        raise InvalidJob(f"job {job.job_id} is already watched (watch {job.job_id})", field="job_id", status=409)
    inputs = [row["input"] async for page in rt.store.iter_results(job.job_id) for row in page]
    await watch_job(rt, tenant, body.rescan, job.job_id, job.kind, job.options, job.priority, inputs)
    watch = await store.get(tenant, job.job_id)
    return _view(watch) if watch else _not_found(job.job_id)


@router.get("/stats")
async def watch_stats(rt: Runtime, tenant: Tenant) -> dict[str, JsonValue]:
    """Watched items, rescans due soon, and rescans saved against rescanning every item daily (per tenant)."""
    row = await WatchStore(rt.pool).stats(tenant)
    if row is None:
        return {"tenant": tenant, "watched_items": 0, "due_next_hour": 0, "due_next_day": 0, "scans_issued": 0,
                "daily_equivalent": 0, "scans_saved": 0, "as_of": None}  # fmt: skip
    return {
        "tenant": tenant,
        "watched_items": row["watched_items"],
        "due_next_hour": row["due_next_hour"],
        "due_next_day": row["due_next_day"],
        "scans_issued": row["scans_issued"],
        "daily_equivalent": row["daily_equivalent"],
        "scans_saved": row["daily_equivalent"] - row["scans_issued"],
        "as_of": row["as_of"].isoformat(),
    }


@router.get("/{watch_id}", response_model=None)
async def show_watch(rt: Runtime, watch_id: UUID, tenant: Tenant) -> dict[str, JsonValue] | JSONResponse:
    watch = await WatchStore(rt.pool).get(tenant, watch_id)
    return _view(watch) if watch else _not_found(watch_id)


def _json(row: dict[str, object]) -> dict[str, JsonValue]:
    return {key: _json_value(value) for key, value in row.items()}


def _json_value(value: object) -> JsonValue:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return cast(JsonValue, value)  # the rest of a watch row is integers, numbers, text and jsonb: JSON already


@router.get("/{watch_id}/items", response_model=None)
async def watch_items(
    rt: Runtime,
    watch_id: UUID,
    tenant: Tenant,
    cursor: Annotated[int, Query(ge=-1)] = -1,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict[str, JsonValue] | JSONResponse:
    """The watch's items with their schedule (next_due, adaptive interval_s, pending trigger) and history."""
    store = WatchStore(rt.pool)
    if await store.get(tenant, watch_id) is None:
        return _not_found(watch_id)
    rows = await store.items(tenant, watch_id, cursor, limit)
    next_cursor = rows[-1]["position"] if len(rows) == limit else None
    return {"items": [_json(row) for row in rows], "next_cursor": next_cursor}  # type: ignore[dict-item]


@router.get("/{watch_id}/rescans", response_model=None)
async def watch_rescans(
    rt: Runtime, watch_id: UUID, tenant: Tenant, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100
) -> dict[str, JsonValue] | JSONResponse:
    """The watch's recent rescans (SLUICE_RESCAN_HISTORY_DAYS), newest first: each one's job id, reason and size."""
    store = WatchStore(rt.pool)
    if await store.get(tenant, watch_id) is None:
        return _not_found(watch_id)
    return {"rescans": [_json(row) for row in await store.rescans(tenant, watch_id, limit)]}


async def _set_paused(rt: Runtime, tenant: str, watch_id: UUID, paused: bool) -> dict[str, JsonValue] | JSONResponse:
    store = WatchStore(rt.pool)
    if not await store.set_paused(tenant, watch_id, paused):
        return _not_found(watch_id)
    watch = await store.get(tenant, watch_id)
    return _view(watch) if watch else _not_found(watch_id)


@router.post("/{watch_id}/pause", response_model=None)
async def pause_watch(rt: Runtime, watch_id: UUID, tenant: Tenant) -> dict[str, JsonValue] | JSONResponse:
    return await _set_paused(rt, tenant, watch_id, True)


@router.post("/{watch_id}/resume", response_model=None)
async def resume_watch(rt: Runtime, watch_id: UUID, tenant: Tenant) -> dict[str, JsonValue] | JSONResponse:
    """Resume; items that fell due while paused are rescanned once, then on schedule."""
    return await _set_paused(rt, tenant, watch_id, False)


@router.patch("/{watch_id}", response_model=None)
async def change_watch(
    rt: Runtime, watch_id: UUID, changes: Annotated[dict[str, JsonValue], Body()], tenant: Tenant
) -> dict[str, JsonValue] | JSONResponse:
    """Change how the watch is rescanned: the given ``rescan`` fields over the current ones."""
    store = WatchStore(rt.pool)
    watch = await store.get(tenant, watch_id)
    if watch is None:
        return _not_found(watch_id)
    current = spec_of(watch.config)
    if "mode" in changes and changes["mode"] != current["mode"]:
        current = {"tags": current["tags"], "debounce": current["debounce"]}
    if "cron" in changes:
        current.pop("interval", None)
    if "interval" in changes:
        current.pop("cron", None)
    try:
        spec = RescanSpec.model_validate(current | changes)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidJob(f"{field or 'rescan'}: {first['msg']}", field=field) from exc
    await store.change(tenant, watch_id, spec.config())
    changed = await store.get(tenant, watch_id)
    return _view(changed) if changed else _not_found(watch_id)


@router.delete("/{watch_id}", status_code=204, response_model=None)
async def delete_watch(rt: Runtime, watch_id: UUID, tenant: Tenant) -> JSONResponse | None:
    if not await WatchStore(rt.pool).delete(tenant, watch_id):
        return _not_found(watch_id)
    return None
