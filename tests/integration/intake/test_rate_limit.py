"""The per-tenant rate limit against the real Redis: a burst of requests_per_minute, then refusals."""

import time
import uuid
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from services.intake.tenancy.rate_limit import LEASE_S, LEASE_SHARE, RateLimiter, rate_limit_headers
from shared.config import RedisSettings
from shared.redis import redis_breaker

BACKOFF_S = 5.0

pytestmark = pytest.mark.fairness


@pytest.fixture
async def redis_client(redis_url: str):
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def limiter_on(client: aioredis.Redis, namespace: str, clock: Callable[[], float] = time.monotonic) -> RateLimiter:
    settings = RedisSettings(breaker_backoff_s=BACKOFF_S)
    return RateLimiter(client, redis_breaker(settings, "rate limits are not enforced", clock=clock), namespace, clock)


async def test_a_tenant_gets_its_per_minute_burst_then_429_headers_and_other_tenants_are_unaffected(
    redis_client: aioredis.Redis,
) -> None:
    limiter = limiter_on(redis_client, uuid.uuid4().hex)

    decisions = [await limiter.hit("acme", 3) for _ in range(4)]
    other = await limiter.hit("globex", 3)

    assert [d.allowed for d in decisions] == [True, True, True, False]  # type: ignore[union-attr]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]  # type: ignore[union-attr]
    refused = rate_limit_headers(decisions[-1])  # type: ignore[arg-type]
    assert refused["RateLimit-Limit"] == "3" and refused["RateLimit-Remaining"] == "0"
    assert 1 <= int(refused["Retry-After"]) <= 20  # one emission interval: 60 s / 3
    assert "Retry-After" not in rate_limit_headers(decisions[0])  # type: ignore[arg-type]
    assert other is not None and other.allowed and other.remaining == 2


async def test_two_limiters_on_one_redis_share_the_count_as_intake_replicas_do(redis_client: aioredis.Redis) -> None:
    namespace = uuid.uuid4().hex
    replica_a, replica_b = limiter_on(redis_client, namespace), limiter_on(redis_client, namespace)

    answers = [await (replica_a if n % 2 else replica_b).hit("acme", 4) for n in range(5)]

    assert [a.allowed for a in answers] == [True, True, True, True, False]  # type: ignore[union-attr]


async def test_without_redis_requests_pass_unlimited_and_redis_is_retried_only_after_the_backoff_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unreachable = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
    now = [100.0]
    limiter = limiter_on(unreachable, "x", clock=lambda: now[0])
    caplog.set_level("INFO", logger="shared.breaker")
    try:
        answers = [await limiter.hit("acme", 1)]
        now[0] += 1
        answers.append(await limiter.hit("acme", 1))
        warned_within_period = len(caplog.records)
        now[0] += BACKOFF_S
        answers.append(await limiter.hit("acme", 1))  # the probe: fails again, re-opens without a new warning
    finally:
        await unreachable.aclose()

    assert answers == [None, None, None]
    assert (warned_within_period, len(caplog.records)) == (1, 1)
    assert "rate limits are not enforced" in caplog.records[0].getMessage()


async def test_under_steady_traffic_a_replica_leases_requests_and_the_replicas_together_never_pass_the_limit(
    redis_client: aioredis.Redis,
) -> None:
    namespace, now = uuid.uuid4().hex, [100.0]
    leasing = limiter_on(redis_client, namespace, clock=lambda: now[0])
    other = limiter_on(redis_client, namespace, clock=lambda: now[0])
    limit = 60  # one emission a second on Redis's clock: the test is over long before one more request fits

    first_window = [await leasing.hit("acme", limit) for _ in range(10)]  # nothing to size a lease by yet: 1 each
    now[0] += LEASE_S * 1.5  # the next window
    leased = await leasing.hit("acme", limit)  # leases min(10 of the last window, 60 / LEASE_SHARE)
    others = []
    while (answer := await other.hit("acme", limit)) is not None and answer.allowed:
        others.append(answer)
    from_lease = [await leasing.hit("acme", limit) for _ in range(limit // LEASE_SHARE)]

    allowed = [d for d in [*first_window, leased, *others, *from_lease] if d is not None and d.allowed]
    assert all(d is not None and d.allowed for d in first_window) and leased is not None and leased.allowed
    assert len(others) == limit - 10 - limit // LEASE_SHARE, "the lease is taken from the shared count"
    assert [d.allowed for d in from_lease if d is not None] == [True, True, False], "what is left of it, then no more"
    assert len(allowed) == limit
    remaining = [d.remaining for d in [leased, *from_lease[:2]] if d is not None]
    assert remaining == [remaining[0], remaining[0] - 1, remaining[0] - 2], "counted down as the lease is used"


async def test_an_expired_lease_is_not_served_from_memory(redis_client: aioredis.Redis) -> None:
    namespace, now = uuid.uuid4().hex, [100.0]
    limiter = limiter_on(redis_client, namespace, clock=lambda: now[0])
    for _ in range(3):
        await limiter.hit("acme", 60)
    now[0] += LEASE_S * 1.5  # the next window
    await limiter.hit("acme", 60)  # leases 3, uses one
    await redis_client.delete(f"sluice:rate:{namespace}:acme")  # Redis forgets the count
    now[0] += LEASE_S * 0.5
    within = await limiter.hit("acme", 60)
    now[0] += LEASE_S
    after = await limiter.hit("acme", 60)

    assert within is not None and within.remaining == 60 - 6 + 1, "served from the lease: Redis not asked"
    assert after is not None and after.remaining == 60 - 1, "asked Redis again, which counts from scratch"
