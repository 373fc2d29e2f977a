"""Following a job over its event stream, pure: reading Server-Sent Events, folding them into JobViews, and when
to reconnect, give up or stop (the clients do the I/O).

What intake sends on ``GET /v1/jobs/{id}/events`` (authenticated like any call, one request against the plan's
rate per connection): a ``status`` event with the whole job view on connect, then ``progress`` events and one
terminal event named after the final status (``completed``, ``partially_failed``, ``failed`` or ``cancelled``),
each with the job's status, counts and percent, after which the stream ends; a ``: keepalive`` comment every 15 s.

Its events carry no ``id``, so after a dropped stream the reconnection (which would send ``Last-Event-ID`` had the
stream ever given one) relies on the ``status`` snapshot every connection starts with: the status is re-read, and
nothing that happened in between is missed. A stream is also reopened every REFRESH_S as a cross-check.
"""

import json
from dataclasses import dataclass, field
from enum import Enum

import httpx

from sluice.client.errors import EventStreamBroken, WaitTimedOut
from sluice.client.models import JobCountsView, JobView
from sluice.client.protocol import Call, check
from sluice.client.retries import RETRY_STATUSES, Attempts, RetryPolicy
from sluice.contracts.events import JobStatus

EVENT_STREAM = "text/event-stream"
IDLE_S = 45.0
"""No line (not even a keepalive) for this long: the connection is dead; reconnect."""
REFRESH_S = 300.0
"""A stream open this long is reopened, so a lost event cannot leave a watch waiting forever."""
POLL_INTERVAL_S = 2.0
"""Where intake serves no event stream (a proxy in between): how often the status is read instead."""
STREAM_ENDED = "the event stream ended before the job did"


class StreamEnd(Enum):
    TERMINAL = "terminal"
    """The job reached a terminal status."""
    REFRESH = "refresh"
    """Open for REFRESH_S: reopen it now."""
    DROPPED = "dropped"
    """Ended, refused (429/503) or broken before the job did: reconnect after a wait."""
    UNSUPPORTED = "unsupported"
    """No event stream here (e.g. a proxy answers 404 or buffers it): poll instead."""


@dataclass
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


@dataclass
class SseDecoder:
    """The text/event-stream format, line by line: an event ends at a blank line; comments are skipped."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, line: str) -> SseEvent | None:
        if not line:
            event = SseEvent(self._event or "message", "\n".join(self._data), self._id) if self._data else None
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


def is_event_stream(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.headers.get("content-type", "").startswith(EVENT_STREAM)


def stream_unsupported(response: httpx.Response) -> bool:
    """An answer that says this address serves no event stream (rather than an error of the call's own)."""
    if response.status_code == 200:
        return not is_event_stream(response)
    return response.status_code in (404, 405, 406, 501)


def refusal(response: httpx.Response) -> StreamEnd:
    """What an answer other than an event stream means: UNSUPPORTED (poll instead; a 404 may also mean there is no
    such job, which the caller checks), DROPPED (429 or 503: reconnect later), or it raises the call's error."""
    if stream_unsupported(response):
        return StreamEnd.UNSUPPORTED
    if response.status_code not in RETRY_STATUSES:
        check(response)
    return StreamEnd.DROPPED


class JobFollower:
    """One watch of one job: its latest view, the stream's last event id, the deadline and the reconnections."""

    def __init__(self, job_id: str, policy: RetryPolicy, timeout_s: float | None, now: float) -> None:
        self.job_id, self.timeout_s = job_id, timeout_s
        self.deadline = None if timeout_s is None else now + timeout_s
        self.view: JobView | None = None
        self.last_event_id: str | None = None
        self.attempts = Attempts(policy, repeatable=True, started=now)
        self.opened_at = now
        self.delivered = False
        self.end: StreamEnd = StreamEnd.DROPPED
        self.outcome: httpx.Response | Exception | None = None
        """How the last connection ended, and the answer or error it ended with."""

    def ended(self, end: StreamEnd, outcome: httpx.Response | Exception | None = None) -> None:
        self.end, self.outcome = end, outcome

    def call(self) -> Call:
        headers = {"Accept": EVENT_STREAM, "Cache-Control": "no-cache"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        return Call("GET", f"/v1/jobs/{self.job_id}/events", headers=headers)

    def opened(self, now: float) -> SseDecoder:
        """A connection was answered with an event stream: its decoder."""
        self.opened_at, self.delivered = now, False
        self.ended(StreamEnd.DROPPED, httpx.RemoteProtocolError(STREAM_ENDED))
        return SseDecoder()

    def apply(self, event: SseEvent) -> JobView | None:
        """The job's view after this event; None when it tells nothing (an unknown event, or before the snapshot)."""
        if event.id is not None:
            self.last_event_id = event.id
        try:
            data = json.loads(event.data)
            if event.event == "status":
                self.view = JobView.model_validate(data)
            elif self.view is not None and isinstance(data, dict) and {"status", "counts"} <= data.keys():
                counts = {name: value for name, value in data["counts"].items() if name != "done"}
                update: dict[str, object] = {"status": JobStatus(data["status"])}
                update["counts"] = JobCountsView.model_validate(counts)
                if "percent" in data:
                    update["percent"] = float(data["percent"])
                self.view = self.view.model_copy(update=update)
            else:
                return None
        except (ValueError, TypeError, AttributeError) as exc:
            raise EventStreamBroken(f"unreadable {event.event!r} event on job {self.job_id}'s stream: {exc}") from exc
        self.delivered = True
        return self.view

    def remaining(self, now: float) -> float | None:
        return None if self.deadline is None else max(self.deadline - now, 0.0)

    def read_timeout(self, now: float) -> float:
        """How long one read of the stream may take: IDLE_S, or less to end at the deadline."""
        remaining = self.remaining(now)
        return IDLE_S if remaining is None else max(min(IDLE_S, remaining), 0.001)

    def check_deadline(self, now: float) -> None:
        if self.deadline is not None and now >= self.deadline:
            raise self.timed_out()

    def timed_out(self) -> WaitTimedOut:
        return WaitTimedOut(self.job_id, self.timeout_s or 0.0, self.view.status.value if self.view else "unknown")

    def stale(self, now: float) -> bool:
        return now - self.opened_at >= REFRESH_S

    def reconnect_wait(self, outcome: httpx.Response | Exception, now: float) -> float | None:
        """How long to wait before reconnecting after a dropped or refused stream (never past the deadline); None:
        give up with ``outcome``'s error. A stream that delivered events starts the count of failures afresh."""
        if self.delivered:
            self.attempts.reset(now)
            self.delivered = False
        wait = self.attempts.next_wait(outcome, now)
        remaining = self.remaining(now)
        return wait if wait is None or remaining is None else min(wait, remaining)
