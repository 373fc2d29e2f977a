"""Translates Sluice errors into HTTP answers: a JSON body everywhere, Retry-After on every 503."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from shared.errors import DatabaseUnavailable, DependencyUnavailable, InvalidJob, JobNotFound, WaitingLineFull
from shared.postgres import CONNECTION_ERRORS

log = logging.getLogger(__name__)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, dict[str, str | None]]:
    return {"error": {"code": code, "message": message, "field": field}}


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
        field = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query"))
        return JSONResponse(error_body("invalid_request", str(first.get("msg")), field or None), status_code=422)

    for error_type in CONNECTION_ERRORS:

        @app.exception_handler(error_type)
        async def on_database_down(request: Request, exc: Exception) -> JSONResponse:
            return _unavailable(DatabaseUnavailable(f"{type(exc).__name__}: {exc}"))
