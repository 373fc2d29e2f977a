"""Redis adapter: the client factory, the breaker every hot-path call goes through, and the cancellation flags
the processor consults."""

import time
from collections.abc import Callable, Iterable
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shared.breaker import Breaker, Outcome
from shared.config import RedisSettings

CANCELLED_TTL_S = 7 * 24 * 3600


def open_redis(settings: RedisSettings) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        settings.url, socket_connect_timeout=settings.op_timeout_s, socket_timeout=settings.op_timeout_s
    )


def redis_breaker(
    settings: RedisSettings,
    degraded: str,
    on_outcome: Callable[[str, Outcome], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Breaker:
    """One per process: every hot-path Redis call of that process shares what it learns about Redis."""
    return Breaker(
        "redis",
        timeout_s=settings.op_timeout_s,
        backoff_s=settings.breaker_backoff_s,
        failures=(RedisError, OSError),
        degraded=degraded,
        clock=clock,
        on_outcome=on_outcome,
    )


def _cancel_key(job_id: UUID) -> str:
    return f"sluice:cancelled:{job_id}"


class CancellationFlags:
    """Which jobs were cancelled, so processors skip their remaining batches. Both calls raise
    DependencyUnavailable when Redis fails, times out or is being skipped by the breaker."""

    def __init__(self, client: aioredis.Redis, breaker: Breaker) -> None:
        self._client = client
        self._breaker = breaker

    async def mark(self, job_id: UUID) -> None:
        await self._breaker.call(lambda: self._client.set(_cancel_key(job_id), b"1", ex=CANCELLED_TTL_S))

    async def cancelled_among(self, job_ids: Iterable[UUID]) -> set[UUID]:
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return set()
        flags = await self._breaker.call(lambda: self._client.mget([_cancel_key(job_id) for job_id in ids]))
        return {job_id for job_id, flag in zip(ids, flags, strict=True) if flag is not None}
