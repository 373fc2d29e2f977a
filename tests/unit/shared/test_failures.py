import socket
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.errors import InvalidJob, ItemFailed
from shared.failures import (
    Disposition,
    FailureRecord,
    InvalidRetryOverrides,
    RetryPolicy,
    checked_tiers,
    classify,
    dead_letter_headers,
    due_wait_s,
    item_timeout_s,
    parse_retry_overrides,
    policy_for,
    retry_delay_s,
    tier_for,
    validate_failure_options,
)
from shared.kinds.web_page.fetch import http_failure, retry_after_s

TIERS = [2, 4, 8, 30, 120]


class FlaggedRetryable(Exception):
    retryable = True


class FlaggedTruthy(Exception):
    retryable = "yes"


@pytest.mark.parametrize(
    "exc",
    [
        ItemFailed("HTTP 503", retryable=True),
        TimeoutError(),
        ConnectionRefusedError("refused"),
        OSError("network unreachable"),
        socket.gaierror(socket.EAI_AGAIN, "again"),
        httpx.ConnectError("no route"),
        httpx.ReadTimeout("slow"),
        FlaggedRetryable(),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_transient_failures_are_retried(exc):
    assert classify(exc) is Disposition.RETRY


@pytest.mark.parametrize(
    "exc",
    [
        ItemFailed("HTTP 404"),
        ValueError("bad"),
        InvalidJob("no"),
        KeyError("x"),
        RuntimeError(),
        FlaggedTruthy(),
        httpx.DecodingError("bad gzip"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_everything_else_fails_the_item_at_once(exc):
    assert classify(exc) is Disposition.FAIL_ITEM


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "after"),
    [
        (429, {"Retry-After": "7"}, True, 7.0),
        (503, {}, True, None),
        (500, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, True, None),
        (404, {"Retry-After": "7"}, False, None),
        (403, {}, False, None),
    ],
)
def test_web_page_http_errors_are_transient_only_for_429_and_5xx(status, headers, retryable, after):
    failure = http_failure(httpx.Response(status, headers=headers))
    assert (failure.retryable, failure.retry_after_s) == (retryable, after)
    assert classify(failure) is (Disposition.RETRY if retryable else Disposition.FAIL_ITEM)


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), (" 12 ", 12.0), ("-1", None), ("1.5", None)])
def test_retry_after_is_read_only_as_whole_seconds(value, expected):
    assert retry_after_s(value) == expected


@pytest.mark.parametrize(("attempt", "expected"), [(1, 2), (2, 4), (3, 8), (4, 30), (5, 120), (12, 120)])
def test_the_backoff_doubles_per_attempt_and_rounds_up_to_a_tier(attempt, expected):
    assert retry_delay_s(attempt, 2.0, None, TIERS, rand=lambda: 1.0) == expected


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_jitter_keeps_the_delay_between_half_and_all_of_the_backoff(attempt):
    backoff = 2.0 * 2 ** (attempt - 1)
    low = retry_delay_s(attempt, 2.0, None, list(range(1, 200)), rand=lambda: 0.0)
    high = retry_delay_s(attempt, 2.0, None, list(range(1, 200)), rand=lambda: 0.999)
    assert (low, high) == (backoff / 2, backoff)


def test_a_target_retry_after_longer_than_the_backoff_wins_and_is_rounded_up():
    assert retry_delay_s(1, 2.0, 9.0, TIERS, rand=lambda: 1.0) == 30
    assert retry_delay_s(1, 2.0, 1.0, TIERS, rand=lambda: 1.0) == 2


def test_a_delay_longer_than_every_tier_waits_in_the_largest():
    assert retry_delay_s(1, 2.0, 3600.0, TIERS, rand=lambda: 0.5) == 120
    assert tier_for(121, [30, 2, 120]) == 120


def test_tiers_need_not_be_sorted():
    assert tier_for(3, [8, 2, 4]) == 4


def test_the_default_policy_gives_four_tries_with_a_two_second_base():
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.base_delay_s) == (4, 2.0)
    assert [policy.allows_another_attempt(n) for n in (1, 2, 3, 4)] == [True, True, True, False]


@pytest.mark.parametrize("fields", [{"max_attempts": 0}, {"max_attempts": 21}, {"base_delay_s": 0}])
def test_a_policy_out_of_bounds_is_refused(fields):
    with pytest.raises(ValueError, match="retry"):
        RetryPolicy(**fields)


def test_a_kinds_override_refines_the_default_and_a_jobs_option_refines_both():
    defaults = RetryPolicy(4, 2.0)
    overrides = {"web.page": {"max_attempts": 6}}
    assert policy_for(defaults, overrides, "bench.noop", {}) == defaults
    assert policy_for(defaults, overrides, "web.page", {}) == RetryPolicy(6, 2.0)
    job = {"retry": {"base_delay_s": 1}}
    assert policy_for(defaults, overrides, "web.page", job) == RetryPolicy(6, 1.0)
    assert policy_for(defaults, overrides, "web.page", {"retry": {"max_attempts": 2}}) == RetryPolicy(2, 2.0)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"retry": 3}, "retry must be an object"),
        ({"retry": {"tries": 3}}, "unknown fields: tries"),
        ({"retry": {"max_attempts": 0}}, "retry.max_attempts must be an integer from 1 to 20"),
        ({"retry": {"max_attempts": 2.5}}, "retry.max_attempts"),
        ({"retry": {"max_attempts": True}}, "retry.max_attempts"),
        ({"retry": {"base_delay_s": -1}}, "retry.base_delay_s must be a number over 0 and at most 600"),
        ({"retry": {"base_delay_s": "2"}}, "retry.base_delay_s"),
        ({"timeout_s": 0}, "timeout_s must be a number of seconds over 0 and at most 3600"),
        ({"timeout_s": 3601}, "timeout_s"),
        ({"timeout_s": "30"}, "timeout_s"),
    ],
)
def test_invalid_retry_and_timeout_options_are_refused_with_the_reason(options, reason):
    with pytest.raises(ValueError, match=reason):
        validate_failure_options(options)


def test_valid_retry_and_timeout_options_pass_unchanged():
    options = {"retry": {"max_attempts": 5, "base_delay_s": 0.5}, "timeout_s": 10, "rounds": 3}
    assert validate_failure_options(options) is options


def test_the_item_timeout_is_the_jobs_option_or_the_processors_default():
    assert item_timeout_s(30.0, {"timeout_s": 2}) == 2.0
    assert item_timeout_s(30.0, {}) == 30.0
    assert item_timeout_s(30.0, {"timeout_s": "x"}) == 30.0


def test_retry_overrides_parse_from_a_json_object_keyed_by_kind():
    assert parse_retry_overrides('{"web.page": {"max_attempts": 5}}') == {"web.page": {"max_attempts": 5}}
    assert parse_retry_overrides("") == {}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("{", "not JSON"), ("[1]", "JSON object"), ('{"web.page": {"max_attempts": 99}}', "'web.page'")],
)
def test_bad_retry_overrides_are_refused_naming_the_setting(raw, reason):
    with pytest.raises(InvalidRetryOverrides, match=reason) as raised:
        parse_retry_overrides(raw)
    assert "SLUICE_PROCESSOR_RETRY_OVERRIDES" in str(raised.value)


def test_dead_letter_headers_carry_every_field_as_text():
    first = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    record = FailureRecord(
        reason="x" * 1500,
        error_type="ItemFailed",
        attempts=4,
        first_failure_at=first,
        last_failure_at=first + timedelta(seconds=14),
        source_topic="p.tasks.retry-8s",
        kind="web.page",
        job_id="j",
        tenant="acme",
    )
    assert dead_letter_headers(record) == {
        "x-sluice-reason": "x" * 1000,
        "x-sluice-error-type": "ItemFailed",
        "x-sluice-attempts": "4",
        "x-sluice-first-failure-at": "2026-01-01T12:00:00+00:00",
        "x-sluice-last-failure-at": "2026-01-01T12:00:14+00:00",
        "x-sluice-trace-id": "",
        "x-sluice-source-topic": "p.tasks.retry-8s",
        "x-sluice-kind": "web.page",
        "x-sluice-job-id": "j",
        "x-sluice-tenant": "acme",
    }


@pytest.mark.parametrize(
    ("due_at_ms", "now_ms", "expected"),
    [(None, 1000, 0.0), (500, 1000, 0.0), (2500, 1000, 1.5), (60_000, 0, 4.0)],
)
def test_a_retry_waits_until_due_but_never_longer_than_its_tier(due_at_ms, now_ms, expected):
    assert due_wait_s(due_at_ms, now_ms, 4) == expected


def test_intake_refuses_a_job_with_bad_retry_options_as_an_invalid_job():
    from services.intake.logic import validate_options
    from shared.kinds.bench import BENCH_NOOP

    with pytest.raises(InvalidJob, match="options: retry.max_attempts") as raised:
        validate_options(BENCH_NOOP, {"retry": {"max_attempts": 50}})
    assert raised.value.field == "options"


@pytest.mark.parametrize("tiers", [[], [0, 2], [-1]])
def test_retry_tiers_must_be_positive_and_at_least_one(tiers):
    with pytest.raises(InvalidRetryOverrides, match="SLUICE_KAFKA_RETRY_TIERS_S"):
        checked_tiers(tiers)


def test_retry_tiers_are_sorted_and_deduplicated():
    assert checked_tiers([8, 2, 8, 4]) == (2, 4, 8)


def test_per_kind_item_timeouts_are_parsed_and_bad_ones_name_the_setting():
    from shared.failures import InvalidRetryOverrides, parse_timeout_overrides

    assert parse_timeout_overrides('{"web.page": 20}') == {"web.page": 20.0}
    assert parse_timeout_overrides("") == {}
    for bad in ('{"web.page": 0}', '{"web.page": "soon"}', "[1]", "{"):
        with pytest.raises(InvalidRetryOverrides, match="SLUICE_PROCESSOR_ITEM_TIMEOUT_OVERRIDES"):
            parse_timeout_overrides(bad)
