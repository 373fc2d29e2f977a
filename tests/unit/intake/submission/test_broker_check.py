"""BrokerCheck's policy, with a clock and a broker whose pings the test answers."""

import asyncio

from services.intake.submission.broker_check import BrokerCheck
from tests.support.poll import let_tasks_run


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Broker:
    """A broker whose every ping waits until the test answers it."""

    def __init__(self) -> None:
        self.pings: list[asyncio.Future[bool]] = []

    async def ping(self, timeout: float) -> bool:
        self.pings.append(asyncio.get_running_loop().create_future())
        return await self.pings[-1]


def _check_with_ttl_of_one_second() -> tuple[Clock, Broker, BrokerCheck]:
    clock, broker = Clock(), Broker()
    return clock, broker, BrokerCheck(broker, timeout_s=1, ttl_s=1.0, clock=clock)  # type: ignore[arg-type]


async def _trusted_once(check: BrokerCheck, broker: Broker) -> None:
    asking = asyncio.ensure_future(check.reachable())
    await let_tasks_run()
    broker.pings[-1].set_result(True)
    assert await asking


async def test_a_success_is_trusted_without_a_ping_for_the_first_half_of_its_ttl():
    clock, broker, check = _check_with_ttl_of_one_second()
    await _trusted_once(check, broker)
    clock.now += 0.4
    assert await check.reachable()
    assert len(broker.pings) == 1


async def test_in_the_second_half_a_caller_is_answered_at_once_and_one_ping_refreshes_the_trust_behind_it():
    clock, broker, check = _check_with_ttl_of_one_second()
    await _trusted_once(check, broker)
    clock.now += 0.6
    assert await check.reachable() and await check.reachable()  # neither waits
    await let_tasks_run()
    assert len(broker.pings) == 2, "one background ping for both"
    broker.pings[-1].set_result(True)
    await let_tasks_run()
    clock.now += 0.9  # past the first success's trust, within the refreshed one's
    assert await check.reachable()
    assert len(broker.pings) == 2


async def test_an_unanswered_refresh_does_not_stretch_the_trust_and_a_failure_is_not_cached():
    clock, broker, check = _check_with_ttl_of_one_second()
    await _trusted_once(check, broker)
    clock.now += 0.6
    assert await check.reachable()
    await let_tasks_run()
    broker.pings[-1].set_result(False)  # the broker went away
    await let_tasks_run()
    clock.now += 0.5  # the first success's trust is over
    asking = asyncio.ensure_future(check.reachable())
    await let_tasks_run()
    assert not asking.done(), "an expired trust waits for a ping"
    broker.pings[-1].set_result(False)
    assert not await asking
    asking = asyncio.ensure_future(check.reachable())
    await let_tasks_run()
    assert len(broker.pings) == 4, "the next caller pings again"
    broker.pings[-1].set_result(True)
    assert await asking
