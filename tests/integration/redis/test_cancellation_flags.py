"""Cancellation flags against a real Redis that hangs (SIGSTOP): one timeout per back-off period, never one per
call, and the flags are read again once Redis answers."""

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.ops.devstack.process import Paused, process_listening_on
from services.ops.devstack.redis import running_embedded_redis
from shared.breaker import Outcome
from shared.config import RedisSettings
from shared.errors import DependencyUnavailable
from shared.redis import CancellationFlags, open_redis, redis_breaker

SETTINGS = dict(op_timeout_s=0.2, breaker_backoff_s=5.0)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    with running_embedded_redis(tmp_path / "redis") as url:
        yield url


@pytest.fixture
async def client(own_redis: str) -> AsyncIterator[aioredis.Redis]:
    redis_client = open_redis(RedisSettings(url=own_redis, **SETTINGS))
    yield redis_client
    await redis_client.aclose()


async def test_a_hung_redis_costs_one_timeout_per_backoff_period_and_flags_are_read_again_after_it(
    own_redis: str, client: aioredis.Redis
) -> None:
    now, outcomes = [0.0], []
    settings = RedisSettings(url=own_redis, **SETTINGS)
    breaker = redis_breaker(settings, "cancelled jobs run", lambda _, o: outcomes.append(o), clock=lambda: now[0])
    flags = CancellationFlags(client, breaker)
    cancelled, running = uuid.uuid4(), uuid.uuid4()
    await flags.mark(cancelled)
    port = int(own_redis.rsplit(":", 1)[1].split("/")[0])

    unavailable = 0
    with Paused(process_listening_on(port)):
        for _ in range(40):  # 20 s of polls, one every 0.5 s: four back-off periods
            try:
                await flags.cancelled_among([cancelled, running])
            except DependencyUnavailable:
                unavailable += 1
            now[0] += 0.5
    now[0] += settings.breaker_backoff_s
    after = await flags.cancelled_among([cancelled, running])

    assert unavailable == 40
    assert outcomes.count(Outcome.FAILED) == 4, "the first call and one probe per period waited out the timeout"
    assert outcomes.count(Outcome.SKIPPED) == 36
    assert after == {cancelled}
    assert not breaker.state.is_open
