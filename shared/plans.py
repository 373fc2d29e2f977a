"""A tenant's plan: the limits admission and fair share enforce. Defaults come from settings; a tenant may override.

This module is the contract between tenancy (who the caller is, which plan they have) and flow control
(admission, waiting jobs, fair share): both read a `Plan`, neither reaches into the other's storage.
"""

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings

from shared.config import _section
from shared.events import Priority


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
