"""SluiceClient: intake's REST API from blocking code."""

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import httpx
from pydantic import JsonValue

from sluice.client import live, protocol
from sluice.client.auth import auth_headers
from sluice.client.body import ReplayableBody
from sluice.client.errors import EventStreamBroken, IntakeUnreachable
from sluice.client.items import read_items
from sluice.client.live import JobFollower, StreamEnd
from sluice.client.models import (
    Dashboard,
    DeadLetter,
    DeadLettersPage,
    ItemResult,
    JobAccepted,
    JobsPage,
    JobView,
    Readiness,
    ResultsPage,
)
from sluice.client.protocol import Call, Submission, new_idempotency_key
from sluice.client.retries import NO_RETRIES, Attempts, RetryPolicy

DEFAULT_URL = "http://127.0.0.1:8000"
ProgressCallback = Callable[[JobView], None]


class SluiceClient:
    """Submit jobs, follow them, read and export their results, cancel them; list and redrive dead letters.

    Give ``url`` with ``api_key``, or an ``httpx.Client`` already pointed and authenticated. Calls are retried as
    ``retry`` says (see ``sluice.client.retries``: 429 and 503 after their Retry-After, else backoff; by default
    five tries within 60 s). Use as a context manager, or call ``close``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self._owns_http = http is None
        self._http = http or httpx.Client(
            base_url=url, headers=auth_headers(api_key), timeout=timeout_s, trust_env=False
        )
        self.url = str(self._http.base_url)
        self.retry = retry or RetryPolicy()

    def __enter__(self) -> "SluiceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def _send(
        self, call: Call, content: Iterable[bytes] | None = None, retry: RetryPolicy | None = None
    ) -> httpx.Response:
        attempts = Attempts(retry or self.retry, call.repeatable, time.monotonic())
        while True:
            try:
                response = self._http.request(
                    call.method, call.path, params=call.params, json=call.json, headers=call.headers, content=content
                )
            except httpx.TransportError as exc:
                if (wait := attempts.next_wait(exc, time.monotonic())) is None:
                    raise IntakeUnreachable(self.url, str(exc) or type(exc).__name__) from exc
            else:
                if (wait := attempts.next_wait(response, time.monotonic())) is None:
                    return response
            time.sleep(wait)  # Retry-After or backoff before the next try

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
        """Submit a job: a short list goes as JSON, anything longer or lazier streams as NDJSON.

        Every try carries the same ``Idempotency-Key`` (``idempotency_key``, else a new uuid4), so a retried
        submission is accepted once; a streamed body is kept (memory, then a temporary file) for a retry to resend."""
        key = idempotency_key or new_idempotency_key()
        submission = Submission(kind, options, priority, callback_url, idempotency_key=key)
        if protocol.sends_as_json(items):
            return protocol.parse(JobAccepted, self._send(submission.json_call(list(items))))
        body = ReplayableBody(protocol.ndjson_chunks(items))
        try:
            return protocol.parse(JobAccepted, self._send(submission.ndjson_call(), body))
        finally:
            body.close()

    def submit_file(self, kind: str, path: str | Path, *, fmt: str | None = None, **submit_args: Any) -> JobAccepted:
        """Submit every item of a CSV, JSONL or plain-lines file, streamed; the format follows the suffix unless
        ``fmt`` says; other keyword arguments are ``submit``'s."""
        with open(path, encoding="utf-8", newline="") as stream:
            return self.submit(kind, read_items(stream, fmt or str(path)), **submit_args)

    def status(self, job_id: object) -> JobView:
        return protocol.parse(JobView, self._send(protocol.job_call(job_id)))

    def watch(
        self, job_id: object, *, timeout_s: float | None = None, poll_interval_s: float = live.POLL_INTERVAL_S
    ) -> Iterator[JobView]:
        """The job's status each time it changes, until it ends (the last one is terminal, as GET /v1/jobs/{id}
        answers it), followed over the job's event stream; reconnects when the stream drops, and reads the status
        every ``poll_interval_s`` only where no stream is served. WaitTimedOut past ``timeout_s`` (checked on every
        event; a quiet stream is read for at most what was left when it connected)."""
        follower = JobFollower(str(job_id), self.retry, timeout_s, time.monotonic())
        while True:
            yield from self._follow(follower)
            end, outcome = follower.end, follower.outcome
            if end is StreamEnd.TERMINAL:
                final = self.status(follower.job_id)
                yield final if final.is_terminal or follower.view is None else follower.view
                return
            if end is StreamEnd.UNSUPPORTED:
                yield from self._poll(follower, poll_interval_s)
                return
            if end is StreamEnd.DROPPED and outcome is not None:
                if (wait := follower.reconnect_wait(outcome, time.monotonic())) is None:
                    self._give_up(outcome)
                time.sleep(wait)  # the reconnection's backoff
            follower.check_deadline(time.monotonic())

    def _follow(self, follower: JobFollower) -> Iterator[JobView]:
        """One connection to the job's event stream: the views it brings; how it ended is left in ``follower``."""
        call, base = follower.call(), self._http.timeout
        read = follower.read_timeout(time.monotonic())
        timeout = httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)
        try:
            with self._http.stream(call.method, call.path, headers=call.headers, timeout=timeout) as response:
                if not live.is_event_stream(response):
                    response.read()
                    follower.ended(live.refusal(response), response)
                    if follower.end is StreamEnd.UNSUPPORTED and response.status_code == 404:
                        self.status(follower.job_id)  # NotFound when the job itself is unknown
                    return
                decoder = follower.opened(time.monotonic())
                for line in response.iter_lines():
                    event = decoder.feed(line)
                    if event is not None and (view := follower.apply(event)) is not None:
                        if view.is_terminal:
                            follower.ended(StreamEnd.TERMINAL)
                            return
                        yield view
                    follower.check_deadline(time.monotonic())
                    if follower.stale(time.monotonic()):
                        follower.ended(StreamEnd.REFRESH)
                        return
        except httpx.TransportError as exc:
            follower.check_deadline(time.monotonic())
            follower.ended(StreamEnd.DROPPED, exc)

    def _poll(self, follower: JobFollower, interval_s: float) -> Iterator[JobView]:
        while True:
            view = self.status(follower.job_id)
            if view != follower.view:
                follower.view = view
                yield view
            if view.is_terminal:
                return
            follower.check_deadline(time.monotonic())
            remaining = follower.remaining(time.monotonic())
            time.sleep(interval_s if remaining is None else min(interval_s, remaining))  # the poll interval

    def _give_up(self, outcome: httpx.Response | Exception) -> NoReturn:
        if isinstance(outcome, httpx.Response):
            protocol.check(outcome)
        raise IntakeUnreachable(self.url, str(outcome) or type(outcome).__name__)

    def wait(
        self,
        job_id: object,
        *,
        on_progress: ProgressCallback | None = None,
        poll_interval_s: float = live.POLL_INTERVAL_S,
        timeout_s: float | None = None,
    ) -> JobView:
        """Follow the job (``watch``) until it ends and return its final status; ``on_progress`` gets every status
        on the way, the final one included. WaitTimedOut past ``timeout_s``."""
        final: JobView | None = None
        for final in self.watch(job_id, timeout_s=timeout_s, poll_interval_s=poll_interval_s):
            if on_progress:
                on_progress(final)
        if final is None:
            raise EventStreamBroken(f"job {job_id}'s watch ended without a status")
        return final

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
        """Stream the job's results as ``csv`` or ``jsonl`` into ``destination``; returns the bytes written. Retried
        until the first byte arrives, not after."""
        path = protocol.export_path(str(job_id), fmt)
        attempts = Attempts(self.retry, True, time.monotonic())
        written = 0
        try:
            while True:
                with self._http.stream("GET", path) as response:
                    if not response.is_success:
                        response.read()
                        if (wait := attempts.next_wait(response, time.monotonic())) is None:
                            protocol.check(response)
                        time.sleep(wait or 0)  # Retry-After or backoff before the next try
                        continue
                    for chunk in response.iter_bytes():
                        destination.write(chunk)
                        written += len(chunk)
                    return written
        except httpx.TransportError as exc:
            raise IntakeUnreachable(self.url, str(exc) or type(exc).__name__) from exc

    def cancel(self, job_id: object) -> JobView:
        return protocol.parse(JobView, self._send(protocol.cancel_call(job_id)))

    def list_jobs(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> JobsPage:
        """One page of the tenant's jobs, newest first (``limit`` 1-500)."""
        return protocol.parse(JobsPage, self._send(protocol.list_jobs_call(status, kind, limit, cursor)))

    def iter_jobs(
        self, *, status: str | None = None, kind: str | None = None, page_size: int = 100
    ) -> Iterator[JobView]:
        """Every job of the tenant (of ``status``, of ``kind``), newest first, page by page."""
        cursor: str | None = None
        while True:
            page = self.list_jobs(status=status, kind=kind, limit=page_size, cursor=cursor)
            yield from page.jobs
            if not (cursor := page.next_cursor):
                return

    def list_dead_letters(
        self, *, job_id: object | None = None, kind: str | None = None, error: str | None = None, limit: int = 100,
        cursor: str | None = None,
    ) -> DeadLettersPage:  # fmt: skip
        """One page of the tenant's dead letters, oldest first; ``error``: reason or error type contains it."""
        call = protocol.dead_letters_call(job_id, kind, error, limit, cursor)
        return protocol.parse(DeadLettersPage, self._send(call))

    def iter_dead_letters(
        self, *, job_id: object | None = None, kind: str | None = None, error: str | None = None, page_size: int = 100
    ) -> Iterator[DeadLetter]:
        """Every dead letter of the tenant that matches, oldest first, page by page."""
        cursor: str | None = None
        while True:
            page = self.list_dead_letters(job_id=job_id, kind=kind, error=error, limit=page_size, cursor=cursor)
            yield from page.dead_letters
            if not (cursor := page.next_cursor):
                return

    def dead_letter(self, letter_id: int) -> DeadLetter:
        """One dead letter with its headers and payload."""
        return protocol.parse(DeadLetter, self._send(protocol.dead_letter_call(letter_id)))

    def redrive_dead_letters(
        self, *, job_id: object | None = None, kind: str | None = None, error: str | None = None,
        ids: Sequence[int] = (), all: bool = False, again: bool = False, limit: int = 1000,
    ) -> int:  # fmt: skip
        """Put the matching dead-lettered items back on the tasks topic; returns how many. Give a filter, ``ids``,
        or ``all=True``; ``again`` includes those redriven before."""
        call = protocol.redrive_call(
            job_id=job_id, kind=kind, error=error, ids=ids, every=all, again=again, limit=limit
        )
        return int(protocol.check(self._send(call)).json()["redriven"])

    def readiness(self) -> Readiness:
        """Whether intake and what it depends on are up (asked once: no retries)."""
        return protocol.parse_readiness(self._send(protocol.readiness_call(), retry=NO_RETRIES))

    def dashboard(self) -> Dashboard:
        """The tenant's overview: recent jobs, throughput, latest dead letters, consumer lag and backlog."""
        return protocol.parse(Dashboard, self._send(protocol.dashboard_call()))
