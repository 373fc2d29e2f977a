"""Per-tenant request rate limit in Redis (GCRA), so it holds across intake replicas; and its HTTP headers.

GCRA keeps one number per tenant, the theoretical arrival time (TAT): each request moves it one emission
interval (60 s / requests_per_minute) later, and a request is refused while the TAT is more than a full
burst (requests_per_minute intervals, i.e. one minute) ahead of now. One Lua script per request reads and
moves it atomically, on Redis's clock, so replicas with skewed clocks agree.
"""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# KEYS[1] the tenant's TAT key; ARGV[1] emission interval in ms; ARGV[2] burst (requests).
# Returns {allowed (0/1), remaining, retry_after_ms, reset_ms}.
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_from = new_tat - burst * interval
if allowed_from > now then
  return {0, 0, math.ceil(allowed_from - now), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], string.format('%.2f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {1, math.floor((now - allowed_from) / interval), 0, math.ceil(new_tat - now)}
"""

REDIS_DOWN_BYPASS_S = 5.0
"""After a Redis error, requests pass unlimited for this long before Redis is tried again."""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_ms: int
    reset_ms: int


def rate_limit_headers(decision: RateDecision) -> dict[str, str]:
    """RateLimit-* (IETF draft: limit per window, what is left, seconds until the window is whole again)."""
    headers = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(math.ceil(decision.reset_ms / 1000)),
    }
    if not decision.allowed:
        headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after_ms / 1000)))
    return headers


class RateLimiter:
    """Counts each tenant's requests against its plan's requests_per_minute.

    Fails open: while Redis cannot be reached, requests are not limited (answers still work; logged), and
    Redis is retried after REDIS_DOWN_BYPASS_S rather than on every request, so a hung Redis costs one
    timeout per interval, not one per request.
    """

    def __init__(self, client: aioredis.Redis, namespace: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._script = client.register_script(_GCRA)
        self._namespace = namespace
        self._clock = clock
        self._bypass_until = 0.0

    async def hit(self, tenant: str, requests_per_minute: int) -> RateDecision | None:
        """Count one request; None when Redis is unavailable and the request passes unlimited."""
        if self._clock() < self._bypass_until:
            return None
        interval_ms = 60_000 / requests_per_minute
        try:
            allowed, remaining, retry_after, reset = await self._script(
                keys=[f"sluice:rate:{self._namespace}:{tenant}"], args=[interval_ms, requests_per_minute]
            )
        except (RedisError, OSError) as exc:
            self._bypass_until = self._clock() + REDIS_DOWN_BYPASS_S
            log.warning("rate limit not enforced for %.0f s: Redis unavailable (%s)", REDIS_DOWN_BYPASS_S, exc)
            return None
        return RateDecision(bool(allowed), requests_per_minute, int(remaining), int(retry_after), int(reset))
