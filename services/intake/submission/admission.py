"""Pure admission rules: does a new job run, wait or get turned away; and where a waiting job stands."""

from dataclasses import dataclass

from pydantic import JsonValue

from shared.errors import WaitingLineFull
from shared.plans import Plan
from sluice.contracts.events import JobStatus


@dataclass(frozen=True)
class TenantLoad:
    """A tenant's unfinished jobs: admitted (queued or running) and waiting for a slot."""

    active: int
    waiting: int


def admit(load: TenantLoad, plan: Plan, retry_after_s: int) -> JobStatus:
    """QUEUED while the tenant is under its active-job limit, else WAITING while its waiting line has room;
    raises WaitingLineFull beyond that."""
    if load.active < plan.max_active_jobs:
        return JobStatus.QUEUED
    if load.waiting < plan.max_waiting_jobs:
        return JobStatus.WAITING
    raise WaitingLineFull(plan.max_waiting_jobs, retry_after_s=retry_after_s)


def promotions(load: TenantLoad, plan: Plan) -> int:
    """How many of the tenant's waiting jobs may start now (oldest first)."""
    return max(0, min(load.waiting, plan.max_active_jobs - load.active))


@dataclass(frozen=True)
class Standing:
    """Where a not-yet-started job stands among its tenant's unfinished jobs."""

    jobs_ahead: int
    """Jobs of the same status (waiting, or queued and not started) submitted before it."""
    items_ahead: int
    """Unfinished items of the tenant's unfinished jobs submitted before it."""
    items_per_second: float
    """The tenant's current processing rate: the sum over its running jobs of done / time since started."""


def queue_view(status: JobStatus, pending_items: int, standing: Standing | None) -> dict[str, JsonValue]:
    """The queue fields of GET /v1/jobs/{id}: position in the tenant's line and an ETA from the tenant's rate
    (null until the tenant has a running job to measure)."""
    if standing is None or status not in (JobStatus.WAITING, JobStatus.QUEUED):
        return {"queue_position": None}
    view: dict[str, JsonValue] = {"queue_position": standing.jobs_ahead + 1}
    if standing.items_per_second > 0:
        view["eta_seconds"] = round((standing.items_ahead + pending_items) / standing.items_per_second, 1)
    return view
