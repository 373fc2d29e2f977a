"""Routes for watching a job: live progress over Server-Sent Events and its webhook deliveries."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID

import orjson
from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import JsonValue

from services.intake.http.errors import AUTHENTICATED, error_responses
from services.intake.http.jobs import Runtime, Tenant, _visible_job
from services.intake.logic import status_view
from shared.stores.webhooks import WebhookStore
from sluice.contracts.events import TERMINAL_EVENT_TYPES

router = APIRouter(responses=AUTHENTICATED | error_responses(404))
KEEPALIVE_S = 15.0


def sse(event: str, data: dict[str, JsonValue]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _event_name(view: dict[str, JsonValue]) -> str:
    return "progress" if view["type"] == "job.progress" else str(view["status"])


@router.get("/v1/jobs/{job_id}/events")
async def job_events(job_id: UUID, rt: Runtime, tenant: Tenant = "default") -> StreamingResponse:
    """Server-Sent Events: ``status`` (a snapshot on connect), then ``progress`` events and a terminal one
    (``completed``, ``partially_failed``, ``failed`` or ``cancelled``), after which the stream ends."""
    queue = rt.hub.attach(job_id)  # before the status read, so no event falls between the two
    try:
        job = await _visible_job(rt, tenant, job_id)
    except BaseException:
        rt.hub.detach(job_id, queue)
        raise

    async def stream() -> AsyncIterator[bytes]:
        try:
            snapshot = status_view(job, datetime.now(UTC))
            yield sse("status", snapshot)
            if job.status.is_terminal:
                return
            while True:
                try:
                    view = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                yield sse(_event_name(view), view)
                if view["type"] in TERMINAL_EVENT_TYPES:
                    return
        finally:
            rt.hub.detach(job_id, queue)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.get("/v1/jobs/{job_id}/deliveries")
async def job_deliveries(job_id: UUID, rt: Runtime, tenant: Tenant = "default") -> dict[str, JsonValue]:
    """The job's webhook deliveries (one per terminal event) with every attempt: time, HTTP status, error."""
    await _visible_job(rt, tenant, job_id)
    return {"job_id": str(job_id), "deliveries": await WebhookStore(rt.pool).for_job(job_id)}  # type: ignore[dict-item]
