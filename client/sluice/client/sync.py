"""SluiceClient: intake's REST API from blocking code."""

import time
from collections.abc import Callable, Iterable, Iterator
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

DEFAULT_URL = "http://127.0.0.1:8000"
ProgressCallback = Callable[[JobView], None]


class SluiceClient:
    """Submit jobs, watch them, read and export their results, cancel them.

    Give ``url`` with ``api_key``, or an ``httpx.Client``
    already pointed and authenticated. Use as a context manager, or call ``close``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        self._owns_http = http is None
        self._http = http or httpx.Client(
            base_url=url, headers=auth_headers(api_key), timeout=timeout_s, trust_env=False
        )
        self.url = str(self._http.base_url)

    def __enter__(self) -> "SluiceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def _send(self, call: Call, content: Iterable[bytes] | None = None) -> httpx.Response:
        try:
            return self._http.request(
                call.method, call.path, params=call.params, json=call.json, headers=call.headers, content=content
            )
        except httpx.TransportError as exc:
            raise IntakeUnreachable(self.url, str(exc) or type(exc).__name__) from exc

    def submit(
        self,
        kind: str,
        items: Iterable[JsonValue],
        *,
        options: dict[str, JsonValue] | None = None,
        priority: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobAccepted:
        """Submit a job: a short list goes as JSON, anything longer or lazier streams as NDJSON."""
        submission = Submission(kind, options, priority, callback_url, idempotency_key)
        if protocol.sends_as_json(items):
            return protocol.parse(JobAccepted, self._send(submission.json_call(list(items))))
        return protocol.parse(JobAccepted, self._send(submission.ndjson_call(), protocol.ndjson_chunks(items)))

    def submit_file(self, kind: str, path: str | Path, *, fmt: str | None = None, **submit_args: Any) -> JobAccepted:
        """Submit every item of a CSV, JSONL or plain-lines file, streamed; the format follows the suffix unless
        ``fmt`` says; other keyword arguments are ``submit``'s."""
        with open(path, encoding="utf-8", newline="") as stream:
            return self.submit(kind, read_items(stream, fmt or str(path)), **submit_args)

    def status(self, job_id: object) -> JobView:
        return protocol.parse(JobView, self._send(Call("GET", f"/v1/jobs/{job_id}")))

    def wait(
        self,
        job_id: object,
        *,
        on_progress: ProgressCallback | None = None,
        poll_interval_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> JobView:
        """Poll until the job is terminal, calling ``on_progress`` with each status; WaitTimedOut past ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            view = self.status(job_id)
            if on_progress:
                on_progress(view)
            if view.is_terminal:
                return view
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimedOut(str(job_id), timeout_s or 0, view.status.value)
            time.sleep(poll_interval_s)  # the poll interval of a status watch, not synchronisation

    def results_page(self, job_id: object, cursor: str | None = None, limit: int = 1000) -> ResultsPage:
        return protocol.parse(ResultsPage, self._send(protocol.results_call(str(job_id), cursor, limit)))

    def iter_results(self, job_id: object, page_size: int = 1000) -> Iterator[ItemResult]:
        """Every result in item order, following the cursors page by page."""
        cursor: str | None = None
        while True:
            page = self.results_page(job_id, cursor, page_size)
            yield from page.items
            if not (cursor := page.next_cursor):
                return

    def export(self, job_id: object, destination: IO[bytes], fmt: str = "jsonl") -> int:
        """Stream the job's results as ``csv`` or ``jsonl`` into ``destination``; returns the bytes written."""
        path = protocol.export_path(str(job_id), fmt)
        written = 0
        try:
            with self._http.stream("GET", path) as response:
                if not response.is_success:
                    response.read()
                    protocol.check(response)
                for chunk in response.iter_bytes():
                    destination.write(chunk)
                    written += len(chunk)
        except httpx.TransportError as exc:
            raise IntakeUnreachable(self.url, str(exc) or type(exc).__name__) from exc
        return written

    def cancel(self, job_id: object) -> JobView:
        return protocol.parse(JobView, self._send(Call("DELETE", f"/v1/jobs/{job_id}")))

    def list_jobs(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> JobsPage:
        """One page of the tenant's jobs, newest first."""
        return protocol.parse(JobsPage, self._send(protocol.list_jobs_call(status, kind, limit, cursor)))
