"""What intake's REST API takes in and gives back (the stored model is shared.stores.jobs.JobRecord)."""

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, JsonValue

from services.intake.watches.spec import RescanSpec
from sluice.contracts.events import Priority


class JobSubmission(BaseModel):
    """Body of POST /v1/jobs as JSON (for large jobs, send the items as NDJSON instead)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(min_length=1, max_length=200)
    items: list[JsonValue] = Field(min_length=1)
    options: dict[str, JsonValue] = Field(default_factory=dict)
    priority: Priority = Priority.NORMAL
    callback_url: HttpUrl | None = None
    rescan: RescanSpec | None = None
    """Watch the items: the scheduler rescans them (see docs/rescans.md)."""


class JobParameters(BaseModel):
    """Query parameters of an NDJSON POST /v1/jobs, whose body holds only the items."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(min_length=1, max_length=200)
    options: dict[str, JsonValue] = Field(default_factory=dict)
    priority: Priority = Priority.NORMAL
    callback_url: HttpUrl | None = None
    rescan: RescanSpec | None = None
