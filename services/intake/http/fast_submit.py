"""POST /v1/jobs without FastAPI's per-request machinery: a plain Starlette route ahead of the documented one.

FastAPI's route (``http.jobs.submit_job``) stays for the OpenAPI document; this one does what it does, in its order:
the bearer header read by the same ``bearer``, the key checked and the request counted (``tenant_of``), the
Idempotency-Key checked against the same limit, then the same ``submit``. Errors reach the same exception
handlers. Resolving the route's dependencies and parameters was a large share of intake's CPU per small submit.
"""

from typing import Annotated

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError
from starlette.responses import Response
from starlette.routing import Route

from services.intake.http.auth import bearer, tenant_of
from services.intake.submission.submit import submit
from sluice.contracts.headers import IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_MAX

_IDEMPOTENCY_KEY: TypeAdapter[str] = TypeAdapter(Annotated[str, Field(max_length=IDEMPOTENCY_KEY_MAX)])


async def submit_lane(request: Request) -> Response:
    tenant = await tenant_of(request, await bearer(request))
    idempotency_key = request.headers.get(IDEMPOTENCY_KEY)
    if idempotency_key is not None and len(idempotency_key) > IDEMPOTENCY_KEY_MAX:
        try:
            _IDEMPOTENCY_KEY.validate_python(idempotency_key)
        except ValidationError as exc:  # as FastAPI reports a header parameter's error
            raise RequestValidationError(
                [{**error, "loc": ("header", IDEMPOTENCY_KEY, *error["loc"])} for error in exc.errors()]
            ) from exc
    return await submit(request, tenant, idempotency_key)


def install_submit_lane(app: FastAPI) -> None:
    """Route POST /v1/jobs to ``submit_lane`` before FastAPI's route for it is reached (it stays documented)."""
    app.router.routes.insert(0, Route("/v1/jobs", submit_lane, methods=["POST"]))
