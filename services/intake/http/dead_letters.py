"""Admin REST routes for dead letters: list, show and redrive, scoped to the caller's tenant."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from services.intake.http.auth import Tenant
from services.intake.http.errors import AUTHENTICATED, error_body, error_responses
from services.intake.http.jobs import Runtime
from shared.kafka import SendWindow
from shared.stores.dead_letters import MAX_LIMIT, DeadLetter, DeadLetterFilter, DeadLetterStore

MAX_LETTER_ID = 2**63 - 1
"""Dead letter ids are bigserial: a larger number is refused as invalid, not sent to PostgreSQL."""
LetterId = Annotated[int, Field(ge=1, le=MAX_LETTER_ID)]
NO_NUL = r"^[^\x00]*$"
"""PostgreSQL text cannot hold NUL: a filter with one is refused as invalid."""

router = APIRouter(prefix="/v1/admin/dlq", tags=["admin"], responses=AUTHENTICATED)


class RedriveRequest(BaseModel):
    """Which dead letters to redrive; with no filter at all, ``all`` must say so explicitly."""

    model_config = ConfigDict(extra="forbid")

    job_id: UUID | None = None
    kind: str | None = Field(None, min_length=1, max_length=200, pattern=NO_NUL)
    error: str | None = Field(None, min_length=1, max_length=1000, pattern=NO_NUL)
    ids: list[LetterId] = Field(default_factory=list, max_length=MAX_LIMIT)
    limit: int = Field(1000, ge=1, le=MAX_LIMIT)
    again: bool = Field(False, description="Also redrive dead letters that were redriven before")
    all: bool = Field(False, description="Redrive every dead letter of the tenant (needed when no filter is given)")

    @model_validator(mode="after")
    def _filtered_or_all(self) -> "RedriveRequest":
        if not (self.all or self.job_id or self.kind or self.error or self.ids):
            raise ValueError("give job_id, kind, error or ids, or all: true to redrive every dead letter")
        return self


def _view(letter: DeadLetter) -> dict[str, JsonValue]:
    return letter.model_dump(mode="json", exclude_none=False)


@router.get("")
async def list_dead_letters(
    runtime: Runtime,
    tenant: Tenant,
    job_id: UUID | None = None,
    kind: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    error: Annotated[str | None, Query(max_length=1000, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[int, Query(ge=0, le=MAX_LETTER_ID)] = 0,
) -> dict[str, JsonValue]:
    flt = DeadLetterFilter(tenant=tenant, job_id=job_id, kind=kind, error=error)
    letters = await DeadLetterStore(runtime.pool).list(flt, limit=limit, after_id=cursor)
    summaries: list[JsonValue] = []
    for letter in letters:
        summary = _view(letter)
        for detail in ("headers", "payload", "raw_excerpt"):
            summary.pop(detail, None)
        summaries.append(summary)
    next_cursor = str(letters[-1].id) if len(letters) == limit else None
    return {"dead_letters": summaries, "next_cursor": next_cursor}


@router.get("/{letter_id}", response_model=None, responses=error_responses(404))
async def show_dead_letter(
    runtime: Runtime, tenant: Tenant, letter_id: Annotated[int, Path(ge=1, le=MAX_LETTER_ID)]
) -> dict[str, JsonValue] | JSONResponse:
    letter = await DeadLetterStore(runtime.pool).get(letter_id, tenant)
    if letter is None:
        return JSONResponse(error_body("not_found", f"dead letter {letter_id} not found"), status_code=404)
    return _view(letter)


@router.post("/redrive")
async def redrive_dead_letters(runtime: Runtime, tenant: Tenant, body: RedriveRequest) -> dict[str, int]:
    """Publish the matching items to the tasks topic again (acknowledged), then mark them redriven."""
    settings = runtime.settings
    flt = DeadLetterFilter(
        tenant=tenant, job_id=body.job_id, kind=body.kind, error=body.error, ids=tuple(body.ids), again=body.again
    )
    window = SendWindow(runtime.broker, settings.kafka.publish_window, settings.publish_stall_timeout_s)
    redriven = await DeadLetterStore(runtime.pool).redrive(flt, window, settings.kafka.topics.tasks, limit=body.limit)
    return {"redriven": redriven}
