"""The failure policy, pure: which failures are retried, after how long, how often, and the dead-letter headers.

A transient failure (a retryable ItemFailed, a timeout, a connection error) is retried with exponential
backoff; the wait is rounded up to one of the retry topics' delay tiers. Everything else fails the item at
once. Either way an item that ends failed is also written to the tasks dead-letter topic, so it can be redriven.
"""

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import TypedDict, TypeGuard, cast

import httpx
import orjson
from pydantic import JsonValue

from shared.errors import ItemFailed
from sluice.contracts.headers import (
    ATTEMPTS_HEADER,
    ERROR_TYPE_HEADER,
    FIRST_FAILURE_HEADER,
    JOB_ID_HEADER,
    KIND_HEADER,
    LAST_FAILURE_HEADER,
    REASON_HEADER,
    SOURCE_TOPIC_HEADER,
    TENANT_HEADER,
    TRACE_ID_HEADER,
)
from sluice.errors import SluiceError

MAX_ATTEMPTS_LIMIT = 20
MAX_BASE_DELAY_S = 600.0
MAX_TIMEOUT_S = 3600.0


class Disposition(Enum):
    RETRY = "retry"
    FAIL_ITEM = "fail_item"


class InvalidRetryOverrides(SluiceError):
    """A retry setting is malformed: the per-kind overrides or the retry tiers."""


def checked_tiers(tiers: Sequence[int]) -> tuple[int, ...]:
    """The retry tiers, ascending and distinct; raises InvalidRetryOverrides unless there is at least one
    and every one is a positive number of seconds."""
    if not tiers or min(tiers) <= 0:
        raise InvalidRetryOverrides(f"SLUICE_KAFKA_RETRY_TIERS_S must list positive delays in seconds, not {tiers!r}")
    return tuple(sorted(set(tiers)))


def classify(exc: BaseException) -> Disposition:
    """RETRY for transient failures, FAIL_ITEM for everything else; no branch drops the item."""
    if isinstance(exc, ItemFailed):
        return Disposition.RETRY if exc.retryable else Disposition.FAIL_ITEM
    if isinstance(exc, TimeoutError | ConnectionError | OSError | httpx.TransportError):
        return Disposition.RETRY
    if getattr(exc, "retryable", False) is True:
        return Disposition.RETRY
    return Disposition.FAIL_ITEM


def tier_for(delay_s: float, tiers: Sequence[int]) -> int:
    """The smallest tier >= delay_s, or the largest tier when the delay is longer than all of them."""
    ordered = sorted(tiers)
    return next((tier for tier in ordered if tier >= delay_s), ordered[-1])


def retry_delay_s(
    attempt: int,
    base_s: float,
    retry_after_s: float | None,
    tiers: Sequence[int],
    *,
    rand: Callable[[], float] = random.random,
) -> int:
    """The tier to wait in after ``attempt`` (1-based) failed.

    Backoff is base·2^(attempt-1) with "equal jitter" (between half and all of it: base 2 s gives
    1–2, 2–4, 4–8 s), at least the target's Retry-After, rounded up to a tier.
    """
    backoff = base_s * 2 ** (attempt - 1)
    delay = backoff / 2 + backoff / 2 * rand()
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return tier_for(math.ceil(delay - 1e-9), tiers)


@dataclass(frozen=True)
class RetryPolicy:
    """How many tries an item gets in total (the first one included) and the backoff's base."""

    max_attempts: int = 4
    base_delay_s: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise ValueError(f"retry.max_attempts must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}")
        if not 0 < self.base_delay_s <= MAX_BASE_DELAY_S:
            raise ValueError(f"retry.base_delay_s must be a number over 0 and at most {MAX_BASE_DELAY_S:g}")

    def overridden(self, overrides: JsonValue) -> "RetryPolicy":
        """This policy with the fields an override names (validated: a JSON object of them)."""
        fields = _retry_fields(overrides)
        return replace(self, **fields)

    def allows_another_attempt(self, attempt: int) -> bool:
        return attempt < self.max_attempts


class _RetryFields(TypedDict, total=False):
    max_attempts: int
    base_delay_s: float


def _retry_fields(value: JsonValue) -> _RetryFields:
    if not isinstance(value, dict):
        raise ValueError("retry must be an object with max_attempts and/or base_delay_s")
    unknown = set(value) - {"max_attempts", "base_delay_s"}
    if unknown:
        raise ValueError(f"retry has unknown fields: {', '.join(sorted(unknown))}")
    fields: _RetryFields = {}
    attempts = value.get("max_attempts")
    if attempts is not None:
        if not _is_int(attempts) or not 1 <= attempts <= MAX_ATTEMPTS_LIMIT:
            raise ValueError(f"retry.max_attempts must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}")
        fields["max_attempts"] = attempts
    base = value.get("base_delay_s")
    if base is not None:
        if not _is_number(base) or not 0 < base <= MAX_BASE_DELAY_S:
            raise ValueError(f"retry.base_delay_s must be a number over 0 and at most {MAX_BASE_DELAY_S:g}")
        fields["base_delay_s"] = float(base)
    return fields


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_failure_options(options: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """Checks a job's ``retry`` and ``timeout_s`` options (for every kind); raises ValueError with the reason."""
    if "retry" in options:
        _retry_fields(options["retry"])
    if "timeout_s" in options:
        timeout = options["timeout_s"]
        if not _is_number(timeout) or not 0 < timeout <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout_s must be a number of seconds over 0 and at most {MAX_TIMEOUT_S:g}")
    return options


def _per_kind_setting(raw: str, name: str) -> dict[str, JsonValue]:
    """A setting holding a JSON object keyed by kind; InvalidRetryOverrides naming ``name`` otherwise."""
    try:
        parsed = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRetryOverrides(f"{name} is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidRetryOverrides(f"{name} must be a JSON object keyed by kind")
    return parsed


def parse_retry_overrides(raw: str) -> dict[str, Mapping[str, JsonValue]]:
    """The per-kind overrides setting, checked: a JSON object of kind → {max_attempts, base_delay_s}."""
    parsed = _per_kind_setting(raw, "SLUICE_PROCESSOR_RETRY_OVERRIDES")
    for kind, override in parsed.items():
        try:
            RetryPolicy().overridden(override)
        except ValueError as exc:
            raise InvalidRetryOverrides(f"SLUICE_PROCESSOR_RETRY_OVERRIDES[{kind!r}]: {exc}") from exc
    return cast(dict[str, Mapping[str, JsonValue]], parsed)  # overridden() accepted each: a JSON object


def policy_for(
    defaults: RetryPolicy,
    kind_overrides: Mapping[str, Mapping[str, JsonValue]],
    kind: str,
    options: Mapping[str, JsonValue],
) -> RetryPolicy:
    """Defaults, then the kind's override, then the job's ``options.retry``; raises ValueError if invalid."""
    policy = defaults.overridden(dict(kind_overrides.get(kind, {})))
    job_retry = options.get("retry")
    return policy if job_retry is None else policy.overridden(job_retry)


def parse_timeout_overrides(raw: str) -> dict[str, float]:
    """The per-kind item timeouts setting, checked: a JSON object of kind → seconds."""
    parsed = _per_kind_setting(raw, "SLUICE_PROCESSOR_ITEM_TIMEOUT_OVERRIDES")
    timeouts: dict[str, float] = {}
    for kind, seconds in parsed.items():
        if not _is_number(seconds) or not 0 < seconds <= MAX_TIMEOUT_S:
            raise InvalidRetryOverrides(
                f"SLUICE_PROCESSOR_ITEM_TIMEOUT_OVERRIDES[{kind!r}] must be seconds over 0, at most {MAX_TIMEOUT_S:g}"
            )
        timeouts[kind] = float(seconds)
    return timeouts


def item_timeout_s(default_s: float, options: Mapping[str, JsonValue]) -> float:
    """The job's ``options.timeout_s`` if it set one, else ``default_s`` (the kind's or the processor's)."""
    timeout = options.get("timeout_s")
    if isinstance(timeout, int | float) and _is_number(timeout) and 0 < timeout <= MAX_TIMEOUT_S:
        return float(timeout)
    return default_s


@dataclass(frozen=True)
class FailureRecord:
    """What the dead-letter headers say about an item that ended failed."""

    reason: str
    error_type: str
    attempts: int
    first_failure_at: datetime
    last_failure_at: datetime
    source_topic: str
    kind: str
    job_id: str
    tenant: str
    trace_id: str = ""


def dead_letter_headers(record: FailureRecord) -> dict[str, str]:
    """The tasks dead-letter topic's headers, every one always present."""
    return {
        REASON_HEADER: record.reason[:1000],
        ERROR_TYPE_HEADER: record.error_type,
        ATTEMPTS_HEADER: str(record.attempts),
        FIRST_FAILURE_HEADER: record.first_failure_at.isoformat(),
        LAST_FAILURE_HEADER: record.last_failure_at.isoformat(),
        TRACE_ID_HEADER: record.trace_id,
        SOURCE_TOPIC_HEADER: record.source_topic,
        KIND_HEADER: record.kind,
        JOB_ID_HEADER: record.job_id,
        TENANT_HEADER: record.tenant,
    }


def due_wait_s(due_at_ms: int | None, now_ms: int, tier_s: int) -> float:
    """How long a retry message still waits: until it is due, never longer than its tier (clock skew)."""
    if due_at_ms is None:
        return 0.0
    return min(max(due_at_ms - now_ms, 0) / 1000, float(tier_s))
