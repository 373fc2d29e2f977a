"""Intake's REST API as data: which request each operation sends and how an answer is read.

Pure (no I/O), so the sync and the async client share every rule and differ only in how they send.
"""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, JsonValue

from sluice.client.errors import ApiError, NotAuthorized, NotFound, ServiceUnavailable
from sluice.contracts.events import Priority

NDJSON = "application/x-ndjson"
JSON_ITEMS_MAX = 1000
"""Lists up to this many items go as one JSON body; longer ones and any other iterable stream as NDJSON."""
NDJSON_CHUNK_BYTES = 64 * 1024

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Submission:
    kind: str
    options: dict[str, JsonValue] | None = None
    priority: Priority | str | None = None
    callback_url: str | None = None
    idempotency_key: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Idempotency-Key": self.idempotency_key} if self.idempotency_key else {}

    def json_call(self, items: list[JsonValue]) -> Call:
        body: dict[str, Any] = {"kind": self.kind, "items": items}
        if self.options:
            body["options"] = self.options
        if self.priority:
            body["priority"] = str(Priority(self.priority))
        if self.callback_url:
            body["callback_url"] = self.callback_url
        return Call("POST", "/v1/jobs", json=body, headers=self.headers())

    def ndjson_call(self) -> Call:
        params: dict[str, Any] = {"kind": self.kind}
        if self.options:
            params["options"] = json.dumps(self.options)
        if self.priority:
            params["priority"] = str(Priority(self.priority))
        if self.callback_url:
            params["callback_url"] = self.callback_url
        return Call("POST", "/v1/jobs", params=params, headers=self.headers() | {"Content-Type": NDJSON})


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


def list_jobs_call(status: str | None, kind: str | None, limit: int, cursor: str | None) -> Call:
    params = {"status": status, "kind": kind, "limit": limit, "cursor": cursor}
    return Call("GET", "/v1/jobs", params={k: v for k, v in params.items() if v is not None})


def results_call(job_id: str, cursor: str | None, limit: int) -> Call:
    params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
    return Call("GET", f"/v1/jobs/{job_id}/results", params=params)


def export_path(job_id: str, fmt: str) -> str:
    """The streaming export of a job's results: ``csv`` or ``jsonl`` (NDJSON)."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"export format must be csv or jsonl, not {fmt!r}")
    return f"/v1/jobs/{job_id}/results.{'csv' if fmt == 'csv' else 'ndjson'}"


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
    if status == 503:
        raise ServiceUnavailable(status, code, message, fld, _retry_after(response))
    error_type = NotAuthorized if status in (401, 403) else NotFound if status == 404 else ApiError
    raise error_type(status, code, message, fld)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(float(response.headers.get("Retry-After", "5")), 0.0)
    except ValueError:  # an HTTP date instead of seconds: fall back to the default
        return 5.0


def parse(model: type[M], response: httpx.Response) -> M:
    return model.model_validate(check(response).json())
