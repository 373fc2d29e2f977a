"""Translates Sluice errors into HTTP answers: a JSON body everywhere, Retry-After on every 503."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.intake.http.auth import RateLimited, Unauthenticated
from services.intake.tenancy.rate_limit import rate_limit_headers
from shared.errors import DatabaseUnavailable, DependencyUnavailable, InvalidJob, JobNotFound, WaitingLineFull
from shared.postgres import CONNECTION_ERRORS

log = logging.getLogger(__name__)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, dict[str, str | None]]:
    return {"error": {"code": code, "message": message, "field": field}}


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer of the REST API."""

    error: ErrorDetail


_MEANINGS = {
    400: "A cursor this API did not issue; `field` names it",
    401: "No API key, or an unknown or revoked one (`WWW-Authenticate: Bearer`)",
    404: "No such job (or dead letter) for this tenant",
    413: "Over a limit; `field` names it",
    415: "Unsupported Content-Type",
    422: "Invalid request; `field` names the culprit",
    429: "Over the plan's requests_per_minute (`Retry-After`, `RateLimit-*`)",
    503: "A dependency is unreachable (`Retry-After`)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, all with the ErrorBody shape."""
    return {status: {"model": ErrorBody, "description": _MEANINGS[status]} for status in statuses}


AUTHENTICATED = error_responses(401, 422, 429, 503)
"""What any route behind `current_tenant` may answer besides its own success."""


def _unavailable(exc: DependencyUnavailable) -> JSONResponse:
    return JSONResponse(
        error_body("unavailable", str(exc), exc.dependency),
        status_code=503,
        headers={"Retry-After": str(exc.retry_after_s)},
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidJob)
    async def on_invalid_job(request: Request, exc: InvalidJob) -> JSONResponse:
        code = "limit_exceeded" if exc.status == 413 else "invalid_request"
        return JSONResponse(error_body(code, exc.reason, exc.field), status_code=exc.status)

    @app.exception_handler(Unauthenticated)
    async def on_unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
        return JSONResponse(
            error_body("unauthenticated", str(exc), "Authorization"),
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="sluice"'},
        )

    @app.exception_handler(RateLimited)
    async def on_rate_limited(request: Request, exc: RateLimited) -> JSONResponse:
        return JSONResponse(
            error_body("rate_limited", str(exc), "requests_per_minute"),
            status_code=429,
            headers=rate_limit_headers(exc.decision),
        )

    @app.exception_handler(JobNotFound)
    async def on_not_found(request: Request, exc: JobNotFound) -> JSONResponse:
        return JSONResponse(error_body("not_found", str(exc)), status_code=404)

    @app.exception_handler(WaitingLineFull)
    async def on_waiting_line_full(request: Request, exc: WaitingLineFull) -> JSONResponse:
        return JSONResponse(
            error_body("too_many_waiting_jobs", str(exc), exc.limit),
            status_code=429,
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    @app.exception_handler(DependencyUnavailable)
    async def on_unavailable(request: Request, exc: DependencyUnavailable) -> JSONResponse:
        log.warning("answering 503: %s", exc)
        return _unavailable(exc)

    @app.exception_handler(RequestValidationError)
    async def on_request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
        return JSONResponse(error_body("invalid_request", str(first.get("msg")), field or None), status_code=422)

    for error_type in CONNECTION_ERRORS:

        @app.exception_handler(error_type)
        async def on_database_down(request: Request, exc: Exception) -> JSONResponse:
            return _unavailable(DatabaseUnavailable(f"{type(exc).__name__}: {exc}"))
