"""Per-tenant request rate limit in Redis (GCRA), so it holds across intake replicas; and its HTTP headers.

GCRA keeps one number per tenant, the theoretical arrival time (TAT): each request moves it one emission
interval (60 s / requests_per_minute) later, and a request is refused while the TAT is more than a full
burst (requests_per_minute intervals, i.e. one minute) ahead of now. A Lua script reads and moves it
atomically, on Redis's clock, so replicas with skewed clocks agree.

A replica under steady traffic reserves several requests' worth at once (a lease): as many as the tenant sent
it in the last whole ``LEASE_S``, at most a twentieth of its per-minute allowance, and serves them from memory for
``LEASE_S``. A Redis round trip per request cost intake CPU and a wait on every submit under load.
The count stays shared and never exceeds the limit (a lease is granted by the same script, only what fits);
what a lease leaves unused when it expires is lost to the tenant, at most what it sent in the last
``LEASE_S``. A tenant sending one request at a time leases one: every request asks Redis, as before. An answer
served from a lease reports the remaining count Redis gave with the lease, less what the lease has used since.
"""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from shared.breaker import Breaker
from shared.errors import DependencyUnavailable

log = logging.getLogger(__name__)

# KEYS[1] the tenant's TAT key; ARGV[1] emission interval in ms; ARGV[2] burst (requests); ARGV[3] requests wanted.
# Grants as many of the wanted requests as fit (0 when not even one does).
# Returns {granted, remaining, retry_after_ms, reset_ms}.
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local granted = math.min(wanted, math.floor((now - tat) / interval + burst))
while granted > 0 and tat + (granted - burst) * interval > now do granted = granted - 1 end
if granted < 1 then
  return {0, 0, math.ceil(tat + (1 - burst) * interval - now), math.ceil(tat - now)}
end
local new_tat = tat + granted * interval
redis.call('SET', KEYS[1], string.format('%.2f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {granted, math.floor((now - (new_tat - burst * interval)) / interval), 0, math.ceil(new_tat - now)}
"""

LEASE_S = 0.1
"""How long a replica serves a tenant's reserved requests from memory, and the window its lease is sized by."""
LEASE_SHARE = 20
"""A lease holds at most 1/LEASE_SHARE of the tenant's requests_per_minute (and at least one request)."""


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


@dataclass
class _Lease:
    """Requests reserved in Redis for one tenant and not yet used, until ``expires``."""

    left: int = 0
    expires: float = 0.0
    redis_remaining: int = 0
    reset_ms: int = 0
    window_start: float = 0.0
    window_hits: int = 0
    last_window_hits: int = 0
    """The tenant's requests to this replica in the last whole LEASE_S before the current one: the next lease's size."""

    def count(self, now: float) -> None:
        if now - self.window_start >= LEASE_S:
            self.last_window_hits = self.window_hits if now - self.window_start < 2 * LEASE_S else 0
            self.window_start, self.window_hits = now, 0
        self.window_hits += 1


class RateLimiter:
    """Counts each tenant's requests against its plan's requests_per_minute.

    Fails open: while Redis cannot be reached, requests are not limited (answers still work). The breaker skips
    Redis for its back-off period after a failure, so a hung Redis costs one timeout per period, not one per
    request; it logs each change of state once.
    """

    def __init__(
        self, client: aioredis.Redis, breaker: Breaker, namespace: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._script = client.register_script(_GCRA)
        self._breaker = breaker
        self._namespace = namespace
        self._clock = clock
        self._leases: dict[str, _Lease] = {}

    async def hit(self, tenant: str, requests_per_minute: int) -> RateDecision | None:
        """Count one request; None when Redis is unavailable and the request passes unlimited."""
        now = self._clock()
        lease = self._leases.get(tenant)
        if lease is None:
            lease = self._leases[tenant] = _Lease(window_start=now)
        lease.count(now)
        if lease.left > 0 and now < lease.expires:
            lease.left -= 1
            return RateDecision(True, requests_per_minute, lease.redis_remaining + lease.left, 0, lease.reset_ms)
        wanted = max(1, min(lease.last_window_hits, requests_per_minute // LEASE_SHARE))
        interval_ms = 60_000 / requests_per_minute
        key = f"sluice:rate:{self._namespace}:{tenant}"
        try:
            granted, remaining, retry_after, reset = await self._breaker.call(
                lambda: self._script(keys=[key], args=[interval_ms, requests_per_minute, wanted])
            )
        except DependencyUnavailable:
            return None
        if not granted:
            return RateDecision(False, requests_per_minute, 0, int(retry_after), int(reset))
        if lease.left > 0 and self._clock() < lease.expires:  # another request's lease arrived meanwhile
            lease.left += int(granted) - 1
        else:
            lease.left, lease.expires = int(granted) - 1, self._clock() + LEASE_S
        lease.redis_remaining, lease.reset_ms = int(remaining), int(reset)
        return RateDecision(True, requests_per_minute, lease.redis_remaining + lease.left, 0, lease.reset_ms)
