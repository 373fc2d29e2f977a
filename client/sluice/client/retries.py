"""When the client sends a request again, and how long it waits first (pure: the caller passes the clock).

Retried: a 429 or 503 answer, and a request that got no answer (connection refused or reset, a timeout).
- The wait is the answer's ``Retry-After`` (delta-seconds or an HTTP date) when it gives one, plus up to a tenth
  (at most a second) of jitter; otherwise an exponential backoff with jitter: between half and all of
  ``backoff_s``, ``2 * backoff_s``, ``4 * backoff_s`` ... capped at ``max_backoff_s``.
- At most ``max_attempts`` tries in all, within ``deadline_s`` of the first (waits included). A wait that would end
  past the deadline is not started: the last answer (or error) is the call's.
- Only a call that is safe to repeat (reads, cancel, and submit, which sends an ``Idempotency-Key``) is retried
  after a 503 or a lost answer; any other (a dead-letter redrive) only when intake surely did not act on it: a 429,
  or a connection that was never opened.
"""

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

RETRY_STATUSES = frozenset({429, 503})
log = logging.getLogger(__name__)

NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
"""Transport errors after which intake surely never saw the request."""
LOST_ANSWER = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
"""Transport errors after which intake may or may not have acted (retried only when the call is repeatable)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries; ``RetryPolicy(max_attempts=1)`` turns retries off."""

    max_attempts: int = 5
    """Tries in all, the first included."""
    backoff_s: float = 0.5
    """The first backoff (doubled on each further try) when the answer names no Retry-After."""
    max_backoff_s: float = 10.0
    deadline_s: float = 60.0
    """No retry is started that would wait past this many seconds after the first try."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_s < 0 or self.max_backoff_s < 0 or self.deadline_s < 0:
            raise ValueError("backoff_s, max_backoff_s and deadline_s cannot be negative")

    def backoff(self, failures: int, rand: float) -> float:
        """The wait after ``failures`` failed tries when the answer named none ("equal jitter", ``rand`` in [0, 1))."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (failures - 1))
        return ceiling / 2 + rand * ceiling / 2

    def delay(self, failures: int, retry_after_s: float | None, elapsed_s: float, rand: float) -> float | None:
        """How long to wait before the next try, or None to give up."""
        if failures >= self.max_attempts:
            return None
        if retry_after_s is None:
            wait = self.backoff(failures, rand)
        else:
            wait = retry_after_s + rand * min(1.0, retry_after_s / 10)
        return None if elapsed_s + wait > self.deadline_s else wait


NO_RETRIES = RetryPolicy(max_attempts=1)


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT; parsedate gives "-0000" dates no zone
        when = when.replace(tzinfo=now.tzinfo)
    return max((when - now).total_seconds(), 0.0)


def retryable(outcome: httpx.Response | Exception, repeatable: bool) -> bool:
    """Whether this answer (or transport error) is worth another try of a call (``repeatable``: safe to repeat)."""
    if isinstance(outcome, httpx.Response):
        return outcome.status_code == 429 or (outcome.status_code in RETRY_STATUSES and repeatable)
    if isinstance(outcome, NOT_SENT):
        return True
    return repeatable and isinstance(outcome, LOST_ANSWER)


class Attempts:
    """One call's tries so far: each outcome says whether (and after how long) to try again."""

    def __init__(
        self,
        policy: RetryPolicy,
        repeatable: bool,
        started: float,
        rand: Callable[[], float] = random.random,
        utc_now: Callable[[], datetime] | None = None,
    ) -> None:
        self.policy, self.repeatable, self.started = policy, repeatable, started
        self.failures = 0
        self._rand = rand
        self._utc_now = utc_now or (lambda: datetime.now(UTC))

    def reset(self, now: float) -> None:
        """Start counting afresh (a watch's stream that delivered events before it dropped)."""
        self.failures, self.started = 0, now

    def next_wait(self, outcome: httpx.Response | Exception, now: float) -> float | None:
        """The wait before trying again after ``outcome``; None when it is final (a success, or give up)."""
        if not retryable(outcome, self.repeatable):
            return None
        self.failures += 1
        hinted = None
        if isinstance(outcome, httpx.Response):
            hinted = retry_after_s(outcome.headers.get("Retry-After"), self._utc_now())
        wait = self.policy.delay(self.failures, hinted, now - self.started, self._rand())
        if wait is not None:
            log.info("%s; trying again in %.1fs (%d of %d)", describe(outcome), wait, self.failures + 1,
                     self.policy.max_attempts)  # fmt: skip
        return wait


def describe(outcome: httpx.Response | Exception) -> str:
    """An answer or transport error in a few words, for a log line."""
    if isinstance(outcome, httpx.Response):
        return f"intake answered {outcome.status_code} {outcome.reason_phrase}"
    return f"no answer from intake ({type(outcome).__name__}: {outcome})" if str(outcome) else type(outcome).__name__
