"""Intake's REST API as data: which request each operation sends and how an answer is read.

Pure (no I/O), so the sync and the async client share every rule and differ only in how they send.
"""

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import uuid4

import httpx
from pydantic import BaseModel, JsonValue

from sluice.client.errors import ApiError, NotAuthorized, NotFound, RateLimited, ServiceUnavailable
from sluice.client.models import Readiness
from sluice.client.retries import retry_after_s
from sluice.contracts.events import Priority
from sluice.contracts.headers import IDEMPOTENCY_KEY

NDJSON = "application/x-ndjson"
JSON_ITEMS_MAX = 1000
"""Lists up to this many items go as one JSON body; longer ones and any other iterable stream as NDJSON."""
NDJSON_CHUNK_BYTES = 64 * 1024
REPEATABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool | None = None
    """Safe to send again after a lost answer; None: as the method says (GET, PUT, DELETE are)."""

    @property
    def repeatable(self) -> bool:
        return self.method in REPEATABLE_METHODS if self.idempotent is None else self.idempotent


def new_idempotency_key() -> str:
    """One per submit call, sent on each of its retries: intake accepts the submission once."""
    return str(uuid4())


@dataclass(frozen=True)
class Submission:
    kind: str
    options: dict[str, JsonValue] | None = None
    priority: Priority | str | None = None
    callback_url: str | None = None
    idempotency_key: str = field(default_factory=new_idempotency_key)

    def headers(self) -> dict[str, str]:
        return {IDEMPOTENCY_KEY: self.idempotency_key}

    def json_call(self, items: list[JsonValue]) -> Call:
        body: dict[str, Any] = {"kind": self.kind, "items": items}
        if self.options:
            body["options"] = self.options
        if self.priority:
            body["priority"] = str(Priority(self.priority))
        if self.callback_url:
            body["callback_url"] = self.callback_url
        return Call("POST", "/v1/jobs", json=body, headers=self.headers(), idempotent=True)

    def ndjson_call(self) -> Call:
        params: dict[str, Any] = {"kind": self.kind}
        if self.options:
            params["options"] = json.dumps(self.options)
        if self.priority:
            params["priority"] = str(Priority(self.priority))
        if self.callback_url:
            params["callback_url"] = self.callback_url
        headers = self.headers() | {"Content-Type": NDJSON}
        return Call("POST", "/v1/jobs", params=params, headers=headers, idempotent=True)


def sends_as_json(items: object) -> bool:
    """A short list or tuple goes as JSON; anything else (long, a generator, a file's lines) streams as NDJSON."""
    return isinstance(items, list | tuple) and len(items) <= JSON_ITEMS_MAX


def ndjson_chunks(items: Iterable[JsonValue]) -> Iterator[bytes]:
    """Items as NDJSON lines, in chunks of about NDJSON_CHUNK_BYTES (memory stays bounded for any input)."""
    buffer = bytearray()
    for item in items:
        buffer += json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        if len(buffer) >= NDJSON_CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


async def ndjson_chunks_of(items: Iterable[JsonValue] | AsyncIterable[JsonValue]) -> AsyncIterator[bytes]:
    """``ndjson_chunks`` of a sync or an async iterable, for the async client (JSON_ITEMS_MAX items at a time)."""
    if not isinstance(items, AsyncIterable):
        for chunk in ndjson_chunks(items):
            yield chunk
        return
    batch: list[JsonValue] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= JSON_ITEMS_MAX:
            for chunk in ndjson_chunks(batch):
                yield chunk
            batch.clear()
    for chunk in ndjson_chunks(batch):
        yield chunk


def _present(**params: Any) -> dict[str, Any]:
    return {name: value for name, value in params.items() if value is not None}


def job_call(job_id: object) -> Call:
    return Call("GET", f"/v1/jobs/{job_id}")


def cancel_call(job_id: object) -> Call:
    return Call("DELETE", f"/v1/jobs/{job_id}")


def list_jobs_call(status: str | None, kind: str | None, limit: int, cursor: str | None) -> Call:
    """GET /v1/jobs: newest first, filtered by status and kind, in keyset pages (``limit`` 1-500)."""
    return Call("GET", "/v1/jobs", params=_present(status=status, kind=kind, limit=limit, cursor=cursor or None))


def results_call(job_id: str, cursor: str | None, limit: int) -> Call:
    params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
    return Call("GET", f"/v1/jobs/{job_id}/results", params=params)


def export_path(job_id: str, fmt: str) -> str:
    """The streaming export of a job's results: ``csv`` or ``jsonl`` (NDJSON)."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"export format must be csv or jsonl, not {fmt!r}")
    return f"/v1/jobs/{job_id}/results.{'csv' if fmt == 'csv' else 'ndjson'}"


def dead_letters_call(
    job_id: object | None, kind: str | None, error: str | None, limit: int, cursor: str | None
) -> Call:
    """GET /v1/admin/dlq: the tenant's dead letters, oldest first (``limit`` 1-1000; ``error`` a substring)."""
    params = _present(job_id=None if job_id is None else str(job_id), kind=kind, error=error, limit=limit)
    return Call("GET", "/v1/admin/dlq", params=params | ({"cursor": cursor} if cursor else {}))


def dead_letter_call(letter_id: int) -> Call:
    return Call("GET", f"/v1/admin/dlq/{letter_id}")


def redrive_call(
    *, job_id: object | None, kind: str | None, error: str | None, ids: Sequence[int], every: bool, again: bool,
    limit: int,
) -> Call:  # fmt: skip
    """POST /v1/admin/dlq/redrive: not repeatable (a lost answer is not retried; a 429 is)."""
    body = _present(job_id=None if job_id is None else str(job_id), kind=kind, error=error)
    body |= {"ids": list(ids), "all": every, "again": again, "limit": limit}
    return Call("POST", "/v1/admin/dlq/redrive", json=body)


def readiness_call() -> Call:
    return Call("GET", "/readyz")


def dashboard_call() -> Call:
    return Call("GET", "/v1/dashboard")


def check(response: httpx.Response) -> httpx.Response:
    """The response if it is a success; else the matching ApiError with intake's code, message and field."""
    if response.is_success:
        return response
    code, message, fld = "error", response.text[:300] or response.reason_phrase, None
    try:
        error = response.json()["error"]
        code, message, fld = error.get("code", code), error.get("message", message), error.get("field")
    except (ValueError, KeyError, TypeError, AttributeError):
        try:  # FastAPI's own {"detail": ...} answers
            message = str(response.json()["detail"])
        except (ValueError, KeyError, TypeError):
            pass
    status = response.status_code
    if status in (429, 503):
        wait = retry_after_s(response.headers.get("Retry-After"), datetime.now(UTC))
        error_type = RateLimited if status == 429 else ServiceUnavailable
        raise error_type(status, code, message, fld, 5.0 if wait is None else wait)
    plain = NotAuthorized if status in (401, 403) else NotFound if status == 404 else ApiError
    raise plain(status, code, message, fld)


def parse(model: type[M], response: httpx.Response) -> M:
    return model.model_validate(check(response).json())


def parse_readiness(response: httpx.Response) -> Readiness:
    """/readyz answers 200 when ready and 503 when not, both with the checks."""
    if response.status_code in (200, 503):
        try:
            return Readiness.model_validate(response.json())
        except ValueError:
            pass
    check(response)
    raise ApiError(response.status_code, "unexpected", f"/readyz answered {response.text[:200]!r}")
