"""A circuit breaker for an optional dependency (Redis): a hung or failing one costs one timeout per back-off
period, never one per call.

Closed, every call goes through under a short timeout. A failure or a timeout opens the breaker: for
``backoff_s`` every call is refused at once (``DependencyUnavailable``) and the caller goes on degraded. After
that one call probes the dependency while the others are still refused; its success closes the breaker, its
failure opens it for another period. Each change of state is logged once.
"""

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from shared.errors import DependencyUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


class Outcome(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class BreakerState:
    """The pure state machine: whether a call may go to the dependency now, and what each outcome does."""

    backoff_s: float
    open_until: float | None = None
    """None while closed; the monotonic time the next probe is allowed, while open."""
    probing: bool = False
    opened_at: float = 0.0
    skipped: int = 0

    @property
    def is_open(self) -> bool:
        return self.open_until is not None

    def admit(self, now: float) -> bool:
        """True if this call goes to the dependency (closed, or the one probe of a period that has run out)."""
        if self.open_until is None:
            return True
        if now >= self.open_until and not self.probing:
            self.probing = True
            return True
        self.skipped += 1
        return False

    def succeeded(self) -> bool:
        """Record a success; True if it closed the breaker."""
        was_open = self.is_open
        self.open_until, self.probing = None, False
        return was_open

    def failed(self, now: float) -> bool:
        """Record a failure or a timeout; True if it opened a closed breaker (a failed probe only re-opens)."""
        was_open = self.is_open
        if not was_open:
            self.opened_at, self.skipped = now, 0
        self.open_until, self.probing = now + self.backoff_s, False
        return not was_open


class Breaker:
    """Calls to one optional dependency, each under ``timeout_s``, skipped for ``backoff_s`` after a failure."""

    def __init__(
        self,
        dependency: str,
        *,
        timeout_s: float,
        backoff_s: float,
        failures: tuple[type[BaseException], ...],
        degraded: str,
        clock: Callable[[], float] = time.monotonic,
        on_outcome: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        self.dependency = dependency
        self._timeout_s = timeout_s
        self._failures: tuple[type[BaseException], ...] = (*failures, TimeoutError)
        self._degraded = degraded
        self._clock = clock
        self._on_outcome = on_outcome
        self.state = BreakerState(backoff_s)

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """The operation's result; DependencyUnavailable at once while open, or after a failure or timeout."""
        if not self.state.admit(self._clock()):
            self._record(Outcome.SKIPPED)
            raise DependencyUnavailable(self.dependency, "skipped while its circuit breaker is open")
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await operation()
        except self._failures as exc:
            self._failed(exc)
            raise DependencyUnavailable(self.dependency, _describe(exc)) from exc
        except BaseException:
            self.state.probing = False  # cancelled mid-probe: the next call probes instead
            raise
        if self.state.succeeded():
            log.info(
                "%s is back after %.1f s; %d calls went on without it",
                self.dependency, self._clock() - self.state.opened_at, self.state.skipped,
            )  # fmt: skip
        self._record(Outcome.OK)
        return result

    def _failed(self, exc: BaseException) -> None:
        self._record(Outcome.FAILED)
        if self.state.failed(self._clock()):
            log.warning(
                "%s unavailable (%s): %s; skipping it for %.1f s at a time until a probe succeeds",
                self.dependency, _describe(exc), self._degraded, self.state.backoff_s,
            )  # fmt: skip
        else:
            log.debug("%s still unavailable (%s)", self.dependency, _describe(exc))

    def _record(self, outcome: Outcome) -> None:
        if self._on_outcome is not None:
            self._on_outcome(self.dependency, outcome)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
