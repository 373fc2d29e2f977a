"""The per-tenant rate limit against the real Redis: a burst of requests_per_minute, then refusals."""

import uuid

import pytest
import redis.asyncio as aioredis

from services.intake.rate_limit import REDIS_DOWN_BYPASS_S, RateLimiter, rate_limit_headers

pytestmark = pytest.mark.fairness


@pytest.fixture
async def redis_client(redis_url: str):
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_a_tenant_gets_its_per_minute_burst_then_429_headers_and_other_tenants_are_unaffected(
    redis_client: aioredis.Redis,
) -> None:
    limiter = RateLimiter(redis_client, namespace=uuid.uuid4().hex)

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
    replica_a, replica_b = RateLimiter(redis_client, namespace), RateLimiter(redis_client, namespace)

    answers = [await (replica_a if n % 2 else replica_b).hit("acme", 4) for n in range(5)]

    assert [a.allowed for a in answers] == [True, True, True, True, False]  # type: ignore[union-attr]


async def test_without_redis_requests_pass_unlimited_and_redis_is_retried_only_after_the_bypass_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unreachable = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
    now = [100.0]
    limiter = RateLimiter(unreachable, namespace="x", clock=lambda: now[0])
    try:
        answers = [await limiter.hit("acme", 1)]
        now[0] += 1
        answers.append(await limiter.hit("acme", 1))
        warned_within_interval = len(caplog.records)
        now[0] += REDIS_DOWN_BYPASS_S
        answers.append(await limiter.hit("acme", 1))
    finally:
        await unreachable.aclose()

    assert answers == [None, None, None]
    assert (warned_within_interval, len(caplog.records)) == (1, 2)
    assert "rate limit not enforced" in caplog.records[0].getMessage()
