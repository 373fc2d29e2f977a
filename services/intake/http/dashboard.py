"""The dashboard: a static page (no build step, no CDN) and the one JSON document it polls.

The page itself holds no data; it asks for the tenant's key and sends it as a header on every call, so the data
routes sit behind the same tenant dependency as the rest of the API. Live bars come from /v1/jobs/{id}/events.
"""

import asyncio
import logging
from datetime import datetime
from importlib.resources import files
from typing import Any
from uuid import UUID

import httpx
from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from prometheus_client.parser import text_string_to_metric_families
from pydantic import JsonValue

from services.intake.http.errors import AUTHENTICATED
from services.intake.http.jobs import Runtime, Tenant
from services.intake.runtime import IntakeRuntime
from shared.stores.backlog import BacklogStore
from shared.stores.job_stats import JobStats

log = logging.getLogger(__name__)
router = APIRouter(responses=AUTHENTICATED)
RECENT_JOBS = 20
THROUGHPUT_MINUTES = 30
DEAD_LETTERS_SHOWN = 10


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard_page() -> HTMLResponse:
    return HTMLResponse(files("services.intake").joinpath("static/dashboard.html").read_text(encoding="utf-8"))


@router.get("/v1/dashboard")
async def dashboard_data(rt: Runtime, tenant: Tenant = "default") -> dict[str, JsonValue]:
    """The tenant's recent jobs, results per minute (and failures), dead letters, and consumer lag per partition."""
    # Also "backlog" (tenant_backlog), for `sluice status`; the docstring is the operation's OpenAPI description,
    # which tests/contracts fingerprints.
    stats = JobStats(rt.pool)
    jobs, throughput, letters, lag, backlog = await asyncio.gather(
        stats.recent_jobs(tenant, RECENT_JOBS),
        stats.throughput(tenant, THROUGHPUT_MINUTES),
        stats.dead_letters(tenant, DEAD_LETTERS_SHOWN),
        consumer_lag(rt.settings.dashboard_metrics_urls),
        tenant_backlog(rt, tenant),
    )
    return {
        "tenant": tenant,
        "jobs": [_job(row) for row in jobs],
        "throughput": [_plain(row) for row in throughput],
        "dead_letters": [_plain(row) for row in letters],
        "lag": lag,
        "backlog": backlog,
    }


async def tenant_backlog(rt: IntakeRuntime, tenant: str) -> dict[str, JsonValue]:
    """The tenant's task batches the dispatcher has not released yet, by priority and kind, and those released whose
    results are not recorded yet (in flight), by kind. A waiting job's batches count once it is admitted."""
    async with rt.pool.acquire() as connection:
        counts = await BacklogStore().counts(connection)
    queued: list[JsonValue] = [
        {"priority": priority.value, "kind": kind, "batches": n}
        for (owner, priority, kind), n in sorted(counts.queued.items())
        if owner == tenant
    ]
    in_flight: list[JsonValue] = [
        {"kind": kind, "batches": n} for (owner, kind), n in sorted(counts.in_flight.items()) if owner == tenant
    ]
    return {
        "queued_batches": sum(n for (owner, _, _), n in counts.queued.items() if owner == tenant),
        "in_flight_batches": sum(n for (owner, _), n in counts.in_flight.items() if owner == tenant),
        "queued": queued,
        "in_flight": in_flight,
    }


def _job(row: dict[str, Any]) -> dict[str, JsonValue]:
    done = row["succeeded"] + row["failed"] + row["cancelled"] + row["timed_out"]
    total = row["total_items"]
    view = _plain(row)
    view["done"] = done
    view["percent"] = 100.0 if total == 0 else min(round(100.0 * done / total, 2), 100.0)
    return view


def _plain(row: dict[str, Any]) -> dict[str, JsonValue]:
    return {
        key: value.isoformat() if isinstance(value, datetime) else str(value) if isinstance(value, UUID) else value
        for key, value in row.items()
    }


async def consumer_lag(urls: list[str]) -> list[dict[str, JsonValue]]:
    """``sluice_consumer_lag`` samples scraped from the services' /metrics (SLUICE_INTAKE_DASHBOARD_METRICS_URLS);
    an unreachable source is listed with its error instead of failing the page."""

    async def scrape(client: httpx.AsyncClient, url: str) -> list[dict[str, JsonValue]]:
        try:
            response = await client.get(url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            return [{"source": url, "error": f"{type(exc).__name__}: {exc}"[:200]}]
        return [
            {"source": url, **sample.labels, "lag": sample.value}
            for family in text_string_to_metric_families(response.text)
            if family.name == "sluice_consumer_lag"
            for sample in family.samples
        ]

    if not urls:
        return []
    async with httpx.AsyncClient(timeout=2) as client:
        scraped = await asyncio.gather(*(scrape(client, url) for url in urls))
    return [row for rows in scraped for row in rows]
