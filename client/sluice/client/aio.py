"""AsyncSluiceClient: intake's REST API from asyncio code (same operations as SluiceClient)."""

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import IO, Any

import httpx
from pydantic import JsonValue

from sluice.client import protocol
from sluice.client.auth import auth_headers
from sluice.client.errors import IntakeUnreachable, WaitTimedOut
from sluice.client.items import read_items
from sluice.client.models import ItemResult, JobAccepted, JobsPage, JobView, ResultsPage
from sluice.client.protocol import Call, Submission
from sluice.client.sync import DEFAULT_URL

ProgressCallback = Callable[[JobView], Awaitable[None] | None]


async def _chunks(items: Iterable[JsonValue] | AsyncIterable[JsonValue]) -> AsyncIterator[bytes]:
    if isinstance(items, AsyncIterable):
        batch: list[JsonValue] = []
        async for item in items:
            batch.append(item)
            if len(batch) >= protocol.JSON_ITEMS_MAX:
                for chunk in protocol.ndjson_chunks(batch):
                    yield chunk
                batch.clear()
        for chunk in protocol.ndjson_chunks(batch):
            yield chunk
        return
    for chunk in protocol.ndjson_chunks(items):
        yield chunk


class AsyncSluiceClient:
    """Like SluiceClient, awaitable; ``submit`` also takes an async iterable of items."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            base_url=url, headers=auth_headers(api_key), timeout=timeout_s, trust_env=False
        )
        self.url = str(self._http.base_url)

    async def __aenter__(self) -> "AsyncSluiceClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _send(self, call: Call, content: AsyncIterable[bytes] | None = None) -> httpx.Response:
        try:
            return await self._http.request(
                call.method, call.path, params=call.params, json=call.json, headers=call.headers, content=content
            )
        except httpx.TransportError as exc:
            raise IntakeUnreachable(self.url, str(exc) or type(exc).__name__) from exc

    async def submit(
        self,
        kind: str,
        items: Iterable[JsonValue] | AsyncIterable[JsonValue],
        *,
        options: dict[str, JsonValue] | None = None,
        priority: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobAccepted:
        """Submit a job: a short list goes as JSON, anything longer or lazier streams as NDJSON."""
        submission = Submission(kind, options, priority, callback_url, idempotency_key)
        if protocol.sends_as_json(items):
            return protocol.parse(JobAccepted, await self._send(submission.json_call(list(items))))  # type: ignore[arg-type]
        return protocol.parse(JobAccepted, await self._send(submission.ndjson_call(), _chunks(items)))

    async def submit_file(
        self, kind: str, path: str | Path, *, fmt: str | None = None, **submit_args: Any
    ) -> JobAccepted:
        """Submit every item of a CSV, JSONL or plain-lines file, streamed; the format follows the suffix unless
        ``fmt`` says; other keyword arguments are ``submit``'s."""
        with open(path, encoding="utf-8", newline="") as stream:
            return await self.submit(kind, read_items(stream, fmt or str(path)), **submit_args)

    async def status(self, job_id: object) -> JobView:
        return protocol.parse(JobView, await self._send(Call("GET", f"/v1/jobs/{job_id}")))

    async def wait(
        self,
        job_id: object,
        *,
        on_progress: ProgressCallback | None = None,
        poll_interval_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> JobView:
        """Poll until the job is terminal, calling ``on_progress`` (sync or async) with each status."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            view = await self.status(job_id)
            if on_progress and (awaitable := on_progress(view)) is not None:
                await awaitable
            if view.is_terminal:
                return view
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimedOut(str(job_id), timeout_s or 0, view.status.value)
            await asyncio.sleep(poll_interval_s)  # the poll interval of a status watch, not synchronisation

    async def results_page(self, job_id: object, cursor: str | None = None, limit: int = 1000) -> ResultsPage:
        return protocol.parse(ResultsPage, await self._send(protocol.results_call(str(job_id), cursor, limit)))

    async def iter_results(self, job_id: object, page_size: int = 1000) -> AsyncIterator[ItemResult]:
        """Every result in item order, following the cursors page by page."""
        cursor: str | None = None
        while True:
            page = await self.results_page(job_id, cursor, page_size)
            for item in page.items:
                yield item
            if not (cursor := page.next_cursor):
                return

    async def export(self, job_id: object, destination: IO[bytes], fmt: str = "jsonl") -> int:
        """Stream the job's results as ``csv`` or ``jsonl`` into ``destination``; returns the bytes written."""
        path = protocol.export_path(str(job_id), fmt)
        written = 0
        try:
            async with self._http.stream("GET", path) as response:
                if not response.is_success:
                    await response.aread()
                    protocol.check(response)
                async for chunk in response.aiter_bytes():
                    destination.write(chunk)
                    written += len(chunk)
        except httpx.TransportError as exc:
            raise IntakeUnreachable(self.url, str(exc) or type(exc).__name__) from exc
        return written

    async def cancel(self, job_id: object) -> JobView:
        return protocol.parse(JobView, await self._send(Call("DELETE", f"/v1/jobs/{job_id}")))

    async def list_jobs(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> JobsPage:
        """One page of the tenant's jobs, newest first."""
        return protocol.parse(JobsPage, await self._send(protocol.list_jobs_call(status, kind, limit, cursor)))
