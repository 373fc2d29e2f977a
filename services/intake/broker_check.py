"""BrokerCheck: is the broker answering? Asked before every accept, answered from a recent success.

A ping is a metadata round trip whose response intake must decode; one per request was a fifth of intake's
CPU under 200 small submits/s. A success is trusted for ``ttl_s`` and concurrent callers share one ping, so
a broker that went away is noticed within ``ttl_s`` (a job accepted meanwhile is durable in the backlog and
waits there for the dispatcher). A failure is never cached: every request while it is down pings again.
"""

import asyncio
import time
from collections.abc import Callable

from faststream.kafka import KafkaBroker


class BrokerCheck:
    def __init__(
        self, broker: KafkaBroker, timeout_s: float, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._broker, self._timeout_s, self._ttl_s, self._clock = broker, timeout_s, ttl_s, clock
        self._fresh_until = 0.0
        self._ping: asyncio.Task[bool] | None = None

    async def reachable(self) -> bool:
        if self._clock() < self._fresh_until:
            return True
        if self._ping is None or self._ping.done():
            self._ping = asyncio.ensure_future(self._ping_once())
        return await asyncio.shield(self._ping)

    async def _ping_once(self) -> bool:
        started = self._clock()
        if ok := await self._broker.ping(timeout=self._timeout_s):
            self._fresh_until = started + self._ttl_s
        return ok
