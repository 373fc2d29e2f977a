"""Following a job over its event stream: the SSE format (pure), then `wait`/`watch` against a real local server that
streams, drops, refuses or serves no stream at all."""

import uuid
from itertools import count

import pytest

from sluice.client import AsyncSluiceClient, JobView, NotFound, RetryPolicy, SluiceClient, WaitTimedOut
from sluice.client.live import SseDecoder, SseEvent
from tests.unit.client.scripted_intake import Reply, ScriptedIntake, Seen, job_view, live_event, sse

FAST = RetryPolicy(max_attempts=4, backoff_s=0.001, max_backoff_s=0.002, deadline_s=10)


def _events_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}/events"


def _decode(text: str) -> list[SseEvent]:
    decoder = SseDecoder()
    return [event for line in text.split("\n") if (event := decoder.feed(line)) is not None]


def test_the_decoder_reads_events_ids_and_multi_line_data_and_skips_comments() -> None:
    events = _decode(': keepalive\n\nevent: status\ndata: {"a":\ndata: 1}\n\nid: 7\ndata: x\n\n')

    assert events == [SseEvent("status", '{"a":\n1}', None), SseEvent("message", "x", "7")]


def _streaming(job_id: str, connections: list[list[str]], final: str = "completed"):
    """GET status answers the final view; the n-th events connection streams connections[n] (the last repeats)."""
    opened = count()

    def route(seen: Seen) -> Reply:
        if seen.path == _events_path(job_id):
            n = next(opened)
            return Reply(events=connections[min(n, len(connections) - 1)])
        return Reply(json=job_view(job_id, final, done=4))

    return route


def test_wait_follows_the_stream_to_its_terminal_event_and_answers_the_final_status() -> None:
    job_id = str(uuid.uuid4())
    stream = [
        sse("status", job_view(job_id, "queued")),
        ": keepalive\n\n",
        sse("progress", live_event(job_id, "running", 2)),
        sse("completed", live_event(job_id, "completed", 4)),
    ]
    seen: list[JobView] = []
    with ScriptedIntake(_streaming(job_id, [stream])).running() as intake, SluiceClient(intake.url) as sluice:
        final = sluice.wait(job_id, on_progress=seen.append)

    assert [(view.status.value, view.counts.done) for view in seen] == [("queued", 0), ("running", 2), ("completed", 4)]
    assert seen[-1] == final and final.finished_at is not None  # the terminal GET's view, not the event's
    assert len(intake.requests(path=_events_path(job_id))) == 1
    assert intake.requests(path=_events_path(job_id))[0].headers["accept"] == "text/event-stream"


def test_a_dropped_stream_is_reopened_and_its_snapshot_re_reads_the_status() -> None:
    job_id = str(uuid.uuid4())
    dropped = [
        sse("status", job_view(job_id, "running", 1), event_id="e1"),
        sse("progress", live_event(job_id, "running", 2)),
    ]
    ended = [sse("status", job_view(job_id, "completed", 4))]  # the job ended while no stream was open
    with ScriptedIntake(_streaming(job_id, [dropped, ended])).running() as intake:
        with SluiceClient(intake.url, retry=FAST) as sluice:
            views = list(sluice.watch(job_id))
    connections = intake.requests(path=_events_path(job_id))

    assert [view.status.value for view in views] == ["running", "running", "completed"]
    assert len(connections) == 2
    assert "last-event-id" not in connections[0].headers and connections[1].headers["last-event-id"] == "e1"


def test_a_429_on_connecting_is_retried_after_its_retry_after() -> None:
    job_id = str(uuid.uuid4())
    opened = count()

    def route(seen: Seen) -> Reply:
        if seen.path == _events_path(job_id) and next(opened) == 0:
            return Reply(429, {"error": {"code": "rate_limited", "message": "slow"}}, {"Retry-After": "0"})
        if seen.path == _events_path(job_id):
            return Reply(events=[sse("status", job_view(job_id, "completed", 4))])
        return Reply(json=job_view(job_id, "completed", 4))

    with ScriptedIntake(route).running() as intake, SluiceClient(intake.url, retry=FAST) as sluice:
        final = sluice.wait(job_id)

    assert final.status.value == "completed"
    assert len(intake.requests(path=_events_path(job_id))) == 2


def test_where_no_stream_is_served_the_status_is_polled() -> None:
    job_id = str(uuid.uuid4())
    polls = count()

    def route(seen: Seen) -> Reply:
        if seen.path == _events_path(job_id):
            return Reply(404, {"detail": "Not Found"})  # a proxy that does not pass the stream through
        return Reply(json=job_view(job_id, "completed" if next(polls) >= 3 else "running", 2))

    with ScriptedIntake(route).running() as intake, SluiceClient(intake.url) as sluice:
        final = sluice.wait(job_id, poll_interval_s=0.01)

    assert final.status.value == "completed"
    assert len(intake.requests(path=_events_path(job_id))) == 1


def test_waiting_for_an_unknown_job_is_not_found() -> None:
    unknown = ScriptedIntake(lambda seen: Reply(404, {"error": {"code": "not_found", "message": "job not found"}}))
    with unknown.running() as intake, SluiceClient(intake.url) as sluice, pytest.raises(NotFound):
        sluice.wait(uuid.uuid4())


def _held(job_id: str, intake_stopping: list[ScriptedIntake]):
    def route(seen: Seen) -> Reply:
        if seen.path == _events_path(job_id):
            return Reply(events=[sse("status", job_view(job_id, "running", 1))], hold=intake_stopping[0].stopping)
        return Reply(json=job_view(job_id, "running", 1))

    return route


def test_wait_past_its_timeout_raises_wait_timed_out_with_the_last_status() -> None:
    job_id, holder = str(uuid.uuid4()), []
    intake = ScriptedIntake(_held(job_id, holder))
    holder.append(intake)
    with intake.running(), SluiceClient(intake.url) as sluice, pytest.raises(WaitTimedOut) as timed_out:
        sluice.wait(job_id, timeout_s=0.3)

    assert timed_out.value.last_status == "running" and timed_out.value.job_id == job_id


async def test_the_async_client_follows_a_dropped_stream_to_the_end_and_times_out_on_a_quiet_one() -> None:
    job_id, quiet_id, holder = str(uuid.uuid4()), str(uuid.uuid4()), []
    dropped = [sse("status", job_view(job_id, "running", 1)), sse("progress", live_event(job_id, "running", 3))]
    ended = [sse("status", job_view(job_id, "running", 3)), sse("completed", live_event(job_id, "completed", 4))]
    streaming, held = _streaming(job_id, [dropped, ended]), _held(quiet_id, holder)
    intake = ScriptedIntake(lambda seen: streaming(seen) if job_id in seen.path else held(seen))
    holder.append(intake)
    seen: list[JobView] = []
    with intake.running():
        async with AsyncSluiceClient(intake.url, retry=FAST) as sluice:
            final = await sluice.wait(job_id, on_progress=seen.append)
            with pytest.raises(WaitTimedOut):
                await sluice.wait(quiet_id, timeout_s=0.3)

    assert [view.counts.done for view in seen] == [1, 3, 3, 4]
    assert final.status.value == "completed" and len(intake.requests(path=_events_path(job_id))) == 2
