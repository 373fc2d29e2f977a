"""BrokerCheck: is the broker answering? Asked before every accept, answered from a recent success.

A ping is a metadata round trip whose response intake must decode; one per request was a large share of
intake's CPU under steady small submits. A success is trusted for ``ttl_s`` and concurrent callers share one ping, so
a broker that went away is noticed within ``ttl_s`` (a job accepted meanwhile is durable in the backlog and
waits there for the dispatcher). A failure is never cached: every request while it is down pings again.

Once half of a success's trust has passed, the next caller starts a ping in the background and is answered
from the success: under steady traffic no request waits for a ping (the one a second that did was the top of
intake's p99), and an unanswered ping still lets the trust run out on time.
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
        now = self._clock()
        if now < self._fresh_until:
            if now >= self._fresh_until - self._ttl_s / 2:
                self._start_ping()
            return True
        return await asyncio.shield(self._start_ping())

    def _start_ping(self) -> "asyncio.Task[bool]":
        if self._ping is None or self._ping.done():
            self._ping = asyncio.ensure_future(self._ping_once())
        return self._ping

    async def _ping_once(self) -> bool:
        started = self._clock()
        if ok := await self._broker.ping(timeout=self._timeout_s):
            self._fresh_until = started + self._ttl_s
        return ok
