"""A tenant's plan: the limits admission and fair share enforce. Defaults come from settings; a tenant may override.

This module is the contract between tenancy (who the caller is, which plan they have) and flow control
(admission, waiting jobs, fair share): both read a `Plan`, neither reaches into the other's storage.
"""

from collections.abc import Mapping

import orjson
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from pydantic_settings import BaseSettings

from shared.config import _section
from sluice.contracts.events import Priority
from sluice.errors import SluiceError


class Plan(BaseModel):
    """Limits of one tenant. Every field has a default from `PlanDefaults`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("standard", min_length=1, max_length=100)
    requests_per_minute: int = Field(100, ge=1, le=1_000_000)
    max_active_jobs: int = Field(5, ge=1, le=100_000, description="Jobs running at once; more wait their turn")
    max_waiting_jobs: int = Field(100, ge=0, le=1_000_000, description="Jobs waiting for a slot; more get 429")
    max_items_per_job: int = Field(2_000_000, ge=1, le=100_000_000)
    max_batch_size: int = Field(50, ge=1, le=1000)
    max_in_flight_batches: int = Field(64, ge=1, le=100_000, description="Batches being processed fleet-wide")
    weight: int = Field(1, ge=1, le=1000, description="Share of processing relative to other tenants' weights")
    priorities: tuple[Priority, ...] = (Priority.HIGH, Priority.NORMAL, Priority.BULK)


class PlanDefaults(BaseSettings):
    """The plan a tenant gets unless its own plan overrides a limit (SLUICE_PLAN_*)."""

    model_config = _section("SLUICE_PLAN_")

    requests_per_minute: int = Field(100, ge=1, le=1_000_000)
    max_active_jobs: int = Field(5, ge=1, le=100_000)
    max_waiting_jobs: int = Field(100, ge=0, le=1_000_000)
    max_items_per_job: int = Field(2_000_000, ge=1, le=100_000_000)
    max_batch_size: int = Field(50, ge=1, le=1000)
    max_in_flight_batches: int = Field(64, ge=1, le=100_000)
    weight: int = Field(1, ge=1, le=1000)

    def plan(self, name: str = "standard", **overrides: object) -> Plan:
        return Plan(name=name, **{**self.model_dump(), **overrides})


OVERRIDABLE = frozenset(Plan.model_fields) - {"name"}
"""The limits a named plan or a tenant's own overrides may set."""


class InvalidPlan(SluiceError):
    """A plan name nobody configured, or an override that is not a limit or is out of its bounds."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.field = reason, field


class TenancySettings(BaseSettings):
    """Named plans (SLUICE_TENANCY_PLANS, JSON: {"pro": {"requests_per_minute": 1000}}) and the plan cache."""

    model_config = _section("SLUICE_TENANCY_")

    plans: str = Field(
        "{}",
        description='Named plans, a JSON object of limits that differ from the defaults: {"pro": {"weight": 4}}',
    )
    plan_cache_ttl_s: float = Field(
        5.0, ge=0, le=3600, description="How long a tenant's plan is reused before re-reading it"
    )
    defaults: PlanDefaults = Field(default_factory=PlanDefaults)

    def named_plans(self) -> dict[str, dict[str, JsonValue]]:
        """The named plans, each checked to resolve; raises InvalidPlan naming what is wrong."""
        try:
            named = orjson.loads(self.plans)
        except orjson.JSONDecodeError as exc:
            raise InvalidPlan(f"SLUICE_TENANCY_PLANS is not JSON: {exc}", field="SLUICE_TENANCY_PLANS") from exc
        if not isinstance(named, dict) or not all(isinstance(limits, dict) for limits in named.values()):
            raise InvalidPlan('SLUICE_TENANCY_PLANS must look like {"pro": {"requests_per_minute": 1000}}')
        for name in named:
            resolve_plan(self.defaults, named, name, {})
        return named


def resolve_plan(
    defaults: PlanDefaults, named: Mapping[str, Mapping[str, JsonValue]], name: str, overrides: Mapping[str, JsonValue]
) -> Plan:
    """A tenant's plan: the defaults, then its named plan's limits, then its own overrides."""
    unknown = set(overrides) - OVERRIDABLE
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidPlan(f"{field} is not a plan limit; limits: {', '.join(sorted(OVERRIDABLE))}", field=field)
    if name != "standard" and name not in named:
        known = ", ".join(sorted({"standard", *named}))
        raise InvalidPlan(f"unknown plan {name!r}; known plans: {known}", field="plan")
    try:
        return defaults.plan(name, **{**named.get(name, {}), **overrides})
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidPlan(f"{location}: {first['msg']}", field=location) from exc
