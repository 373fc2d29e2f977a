"""The circuit breaker's state machine and its calls: one failure opens it, one probe per period, each change
logged once."""

import asyncio

import pytest

from shared.breaker import Breaker, BreakerState, Outcome
from shared.errors import DependencyUnavailable

BACKOFF_S = 5.0


class Down(Exception):
    pass


def test_a_closed_breaker_admits_every_call() -> None:
    state = BreakerState(BACKOFF_S)

    assert all(state.admit(now) for now in (0.0, 0.1, 100.0))


def test_a_failure_opens_it_and_nothing_is_admitted_until_the_backoff_has_run_out() -> None:
    state = BreakerState(BACKOFF_S)

    opened = state.failed(10.0)

    assert opened and state.is_open
    assert [state.admit(10.0 + dt) for dt in (0.0, 1.0, BACKOFF_S - 0.01)] == [False, False, False]
    assert state.skipped == 3


def test_after_the_backoff_exactly_one_call_probes_while_the_others_are_still_refused() -> None:
    state = BreakerState(BACKOFF_S)
    state.failed(0.0)

    admitted = [state.admit(BACKOFF_S + dt) for dt in (0.0, 0.1, 0.2)]

    assert admitted == [True, False, False]


def test_a_failed_probe_reopens_for_another_period_without_counting_as_a_new_outage() -> None:
    state = BreakerState(BACKOFF_S)
    state.failed(0.0)
    state.admit(BACKOFF_S)

    reopened_as_new = state.failed(BACKOFF_S + 0.25)

    assert not reopened_as_new
    assert not state.admit(BACKOFF_S + 1.0)
    assert state.admit(2 * BACKOFF_S + 0.25)


def test_a_successful_probe_closes_it() -> None:
    state = BreakerState(BACKOFF_S)
    state.failed(0.0)
    state.admit(BACKOFF_S)

    closed = state.succeeded()

    assert closed and not state.is_open
    assert state.admit(BACKOFF_S + 0.01) and state.admit(BACKOFF_S + 0.02)


def test_a_success_while_closed_is_no_change_of_state() -> None:
    assert not BreakerState(BACKOFF_S).succeeded()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, outcomes: list[Outcome], timeout_s: float = 0.05) -> Breaker:
    return Breaker(
        "cache",
        timeout_s=timeout_s,
        backoff_s=BACKOFF_S,
        failures=(Down,),
        degraded="answers are computed afresh",
        clock=clock,
        on_outcome=lambda _, outcome: outcomes.append(outcome),
    )


async def test_a_hung_dependency_costs_one_timeout_then_calls_are_refused_at_once_until_the_probe(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, outcomes, calls = Clock(), [], []
    guarded = breaker(clock, outcomes)

    async def hangs() -> None:
        calls.append(clock.now)
        await asyncio.Event().wait()

    for _ in range(21):  # a call every 0.5 s from 0 to 10 s: two back-off periods
        with pytest.raises(DependencyUnavailable):
            await guarded.call(hangs)
        clock.now += 0.5

    assert calls == [1000.0, 1005.0, 1010.0], "the first call, then one probe per period"
    assert outcomes.count(Outcome.FAILED) == 3 and outcomes.count(Outcome.SKIPPED) == 18
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "answers are computed afresh" in warnings[0].getMessage()


async def test_the_first_success_after_an_outage_closes_it_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="shared.breaker")
    clock, outcomes = Clock(), []
    guarded = breaker(clock, outcomes)
    up = [False]

    async def answers() -> str:
        if not up[0]:
            raise Down("connection refused")
        return "pong"

    with pytest.raises(DependencyUnavailable, match="connection refused"):
        await guarded.call(answers)
    up[0] = True
    clock.now += BACKOFF_S
    results = [await guarded.call(answers) for _ in range(3)]

    assert results == ["pong"] * 3
    assert [r.getMessage().split(" (")[0].split(" after")[0] for r in caplog.records] == [
        "cache unavailable", "cache is back",
    ]  # fmt: skip


async def test_an_error_it_does_not_guard_against_passes_through_and_leaves_it_closed() -> None:
    clock, outcomes = Clock(), []
    guarded = breaker(clock, outcomes)

    async def bug() -> None:
        raise KeyError("a bug, not an outage")

    with pytest.raises(KeyError):
        await guarded.call(bug)

    assert not guarded.state.is_open and outcomes == []
