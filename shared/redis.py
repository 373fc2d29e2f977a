"""Redis adapter: the client factory and the cancellation flags the processor consults."""

from collections.abc import Iterable
from uuid import UUID

import redis.asyncio as aioredis

from shared.config import RedisSettings

CANCELLED_TTL_S = 7 * 24 * 3600


def open_redis(settings: RedisSettings) -> aioredis.Redis:
    return aioredis.Redis.from_url(settings.url, socket_connect_timeout=2, socket_timeout=2)


def _cancel_key(job_id: UUID) -> str:
    return f"sluice:cancelled:{job_id}"


class CancellationFlags:
    """Which jobs were cancelled, so processors skip their remaining batches."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def mark(self, job_id: UUID) -> None:
        await self._client.set(_cancel_key(job_id), b"1", ex=CANCELLED_TTL_S)

    async def cancelled_among(self, job_ids: Iterable[UUID]) -> set[UUID]:
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return set()
        flags = await self._client.mget([_cancel_key(job_id) for job_id in ids])
        return {job_id for job_id, flag in zip(ids, flags, strict=True) if flag is not None}
