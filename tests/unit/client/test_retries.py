"""The SDK's retries: the policy's arithmetic (pure), then what a real local server sees from the clients."""

import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import count

import httpx
import pytest

from sluice.client import (
    AsyncSluiceClient,
    IntakeUnreachable,
    RateLimited,
    RetryPolicy,
    ServiceUnavailable,
    SluiceClient,
)
from sluice.client.retries import Attempts, retry_after_s
from sluice.contracts.headers import IDEMPOTENCY_KEY
from tests.unit.client.scripted_intake import Reply, ScriptedIntake, Seen

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=4, backoff_s=0.001, max_backoff_s=0.002, deadline_s=10)
ACCEPTED = {"job_id": str(uuid.uuid4()), "status_url": "u", "results_url": "r", "total_items": 2, "total_batches": 1}


def _key(seen: Seen) -> str:
    return seen.headers[IDEMPOTENCY_KEY.lower()]


def _refuse_then_accept(refusals: int, status: int = 429, retry_after: str = "0"):
    calls = count()

    def route(seen: Seen) -> Reply:
        if next(calls) < refusals:
            return Reply(
                status, {"error": {"code": "rate_limited", "message": "slow down"}}, {"Retry-After": retry_after}
            )
        return Reply(202, ACCEPTED)

    return route


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    in_a_minute = format_datetime(NOW + timedelta(seconds=60), usegmt=True)

    assert retry_after_s("7", NOW) == 7.0
    assert retry_after_s(in_a_minute, NOW) == 60.0
    assert retry_after_s(format_datetime(NOW - timedelta(seconds=5), usegmt=True), NOW) == 0.0
    assert retry_after_s("soon", NOW) is None and retry_after_s(None, NOW) is None


def test_backoff_doubles_from_backoff_s_with_jitter_below_the_cap() -> None:
    policy = RetryPolicy(backoff_s=0.5, max_backoff_s=3.0)

    assert [policy.backoff(n, 0.0) for n in (1, 2, 3, 4, 5)] == [0.25, 0.5, 1.0, 1.5, 1.5]
    assert [policy.backoff(n, 0.999) for n in (1, 2, 3, 4)] == pytest.approx([0.5, 1.0, 2.0, 3.0], abs=0.01)


def test_retry_after_wins_over_backoff_and_no_wait_goes_past_the_attempts_or_the_deadline() -> None:
    policy = RetryPolicy(max_attempts=3, deadline_s=10)

    assert policy.delay(1, 4.0, elapsed_s=0, rand=0.0) == 4.0
    assert policy.delay(1, 4.0, elapsed_s=0, rand=0.5) == 4.2  # a tenth at most, as jitter
    assert policy.delay(1, 4.0, elapsed_s=7, rand=0.0) is None  # would end past the deadline
    assert policy.delay(3, None, elapsed_s=0, rand=0.0) is None  # the third try was the last


def test_only_calls_safe_to_repeat_are_retried_after_a_503_or_a_lost_answer() -> None:
    def wait(repeatable: bool, outcome: httpx.Response | Exception) -> float | None:
        return Attempts(FAST, repeatable, started=0.0, rand=lambda: 0.0).next_wait(outcome, now=0.0)

    request = httpx.Request("GET", "http://intake/")
    unavailable, limited = httpx.Response(503, request=request), httpx.Response(429, request=request)
    assert wait(True, unavailable) is not None and wait(False, unavailable) is None
    assert wait(False, limited) is not None
    assert wait(False, httpx.ConnectError("refused")) is not None  # never reached intake
    assert wait(True, httpx.ReadError("reset")) is not None and wait(False, httpx.ReadError("reset")) is None
    assert wait(True, httpx.Response(500, request=request)) is None and wait(True, httpx.Response(200)) is None


def test_a_429_is_retried_with_the_same_idempotency_key_and_answers_the_accepted_job() -> None:
    with ScriptedIntake(_refuse_then_accept(2)).running() as intake, SluiceClient(intake.url, retry=FAST) as sluice:
        accepted = sluice.submit("bench.noop", ["a", "b"])
    posts = intake.requests("POST", "/v1/jobs")

    assert accepted.job_id == ACCEPTED["job_id"]
    assert len(posts) == 3
    assert len({_key(post) for post in posts}) == 1
    assert uuid.UUID(_key(posts[0])).version == 4


def test_a_callers_idempotency_key_wins_and_each_submit_call_gets_its_own_otherwise() -> None:
    with ScriptedIntake(lambda seen: Reply(202, ACCEPTED)).running() as intake, SluiceClient(intake.url) as sluice:
        sluice.submit("bench.noop", ["a"], idempotency_key="order-42")
        sluice.submit("bench.noop", ["a"])
        sluice.submit("bench.noop", ["a"])
    keys = [_key(post) for post in intake.requests("POST")]

    assert keys[0] == "order-42"
    assert keys[1] != keys[2]


def test_a_streamed_submission_is_sent_whole_again_after_a_503() -> None:
    items = ({"n": n} for n in range(5000))  # a generator: read once, so the retry replays what was kept
    with ScriptedIntake(_refuse_then_accept(1, status=503)).running() as intake:
        with SluiceClient(intake.url, retry=FAST) as sluice:
            sluice.submit("bench.noop", items)
    first, second = intake.requests("POST")

    assert first.headers["content-type"] == "application/x-ndjson"
    assert first.body == second.body and first.body.count(b"\n") == 5000
    assert _key(first) == _key(second)


def test_retries_end_with_the_last_refusal_and_its_retry_after() -> None:
    refusing = ScriptedIntake(_refuse_then_accept(99, retry_after="0"))
    with refusing.running() as intake, SluiceClient(intake.url, retry=FAST) as sluice:
        with pytest.raises(RateLimited) as refused:
            sluice.list_jobs()

    assert len(intake.requests("GET")) == FAST.max_attempts
    assert refused.value.status == 429 and refused.value.retry_after_s == 0.0


def test_a_retry_after_beyond_the_deadline_is_not_waited_for() -> None:
    slow = ScriptedIntake(_refuse_then_accept(99, status=503, retry_after="3600"))
    with slow.running() as intake, SluiceClient(intake.url, retry=RetryPolicy(deadline_s=60)) as sluice:
        with pytest.raises(ServiceUnavailable) as unavailable:
            sluice.status(uuid.uuid4())

    assert len(intake.requests()) == 1
    assert unavailable.value.retry_after_s == 3600.0


def test_a_redrive_is_retried_after_a_429_but_not_after_a_503() -> None:
    for status, tries in ((429, 2), (503, 1)):
        script = ScriptedIntake(lambda seen, status=status: Reply(status, {}, {"Retry-After": "0"}))
        with script.running() as intake, SluiceClient(intake.url, retry=RetryPolicy(max_attempts=2)) as sluice:
            with pytest.raises((RateLimited, ServiceUnavailable)):
                sluice.redrive_dead_letters(all=True)
        assert len(intake.requests("POST", "/v1/admin/dlq/redrive")) == tries, status


def test_a_refused_connection_is_retried_then_reported_unreachable() -> None:
    with ScriptedIntake(lambda seen: Reply(200, {})).running() as gone:
        url = gone.url  # a port that was just given up: nothing listens there now
    with SluiceClient(url, retry=FAST) as sluice, pytest.raises(IntakeUnreachable) as unreachable:
        sluice.list_jobs()

    assert str(unreachable.value).startswith(f"cannot reach intake at {url}")


async def test_the_async_client_retries_a_429_with_the_same_idempotency_key() -> None:
    with ScriptedIntake(_refuse_then_accept(1)).running() as intake:
        async with AsyncSluiceClient(intake.url, retry=FAST) as sluice:
            accepted = await sluice.submit("bench.noop", ["a", "b"])
            streamed = await sluice.submit("bench.noop", (n for n in range(3000)))
    posts = intake.requests("POST")

    assert accepted.job_id == streamed.job_id == ACCEPTED["job_id"]
    assert len(posts) == 3
    assert _key(posts[0]) == _key(posts[1]) != _key(posts[2])
