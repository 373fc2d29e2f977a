"""The services' errors; every exception Sluice raises on purpose descends from SluiceError (sluice.errors)."""

from sluice.errors import SluiceError


class InvalidJob(SluiceError):
    """A job request that can never be accepted as sent (maps to a 4xx, or the rejected topic)."""

    def __init__(self, reason: str, *, field: str | None = None, status: int = 422) -> None:
        super().__init__(reason)
        self.reason, self.field, self.status = reason, field, status


class UnknownKind(InvalidJob):
    """The job names a kind no handler is registered for."""

    def __init__(self, kind: str, known: list[str]) -> None:
        super().__init__(f"unknown kind {kind!r}; known kinds: {', '.join(sorted(known))}", field="kind")
        self.kind = kind


class InvalidItem(InvalidJob):
    """One item of a job is malformed for its kind."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"item {index}: {reason}", field=f"items[{index}]")
        self.index = index


class LimitExceeded(InvalidJob):
    """A request is over a configured limit; the limit is named so the caller can adapt."""

    def __init__(self, limit: str, value: int, maximum: int) -> None:
        super().__init__(f"{limit} is {value}, over the limit of {maximum}", field=limit, status=413)
        self.limit, self.value, self.maximum = limit, value, maximum


class JobNotFound(SluiceError):
    """No job with that id is visible to the caller."""

    def __init__(self, job_id: object) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class IdempotencyConflict(SluiceError):
    """A request with the same Idempotency-Key is still being accepted."""


class DependencyUnavailable(SluiceError):
    """A backing service (broker, database, cache) cannot be reached; the caller should retry later."""

    def __init__(self, dependency: str, detail: str, *, retry_after_s: int = 5) -> None:
        super().__init__(f"{dependency} unavailable: {detail}")
        self.dependency, self.detail, self.retry_after_s = dependency, detail, retry_after_s


class BrokerUnavailable(DependencyUnavailable):
    """Kafka did not accept or acknowledge a publish."""

    def __init__(self, detail: str, *, retry_after_s: int = 5) -> None:
        super().__init__("kafka", detail, retry_after_s=retry_after_s)


class DatabaseUnavailable(DependencyUnavailable):
    """PostgreSQL could not be reached."""

    def __init__(self, detail: str, *, retry_after_s: int = 5) -> None:
        super().__init__("postgres", detail, retry_after_s=retry_after_s)


class ItemFailed(SluiceError):
    """A handler's deliberate, explained failure of one item (the result records reason and type).

    ``retryable`` marks a transient failure (timeout, connection error, HTTP 429/5xx) worth another
    attempt; ``retry_after_s`` is the target's own Retry-After, honoured when it is longer than the backoff.
    """

    def __init__(self, reason: str, *, retryable: bool = False, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retryable, self.retry_after_s = reason, retryable, retry_after_s


class PlanLimitExceeded(LimitExceeded):
    """A request is over one of the tenant's plan limits; the plan limit is named."""

    def __init__(self, limit: str, field: str, value: int, maximum: int) -> None:
        super().__init__(field, value, maximum)
        self.reason = f"{field} is {value}, over the plan's {limit} of {maximum}"
        self.args = (self.reason,)
        self.plan_limit = limit


class WaitingLineFull(SluiceError):
    """A tenant already has its plan's maximum of waiting jobs; the caller should retry later (429)."""

    def __init__(self, maximum: int, *, retry_after_s: int) -> None:
        super().__init__(f"max_waiting_jobs: {maximum} jobs are already waiting for a slot; retry later")
        self.limit, self.maximum, self.retry_after_s = "max_waiting_jobs", maximum, retry_after_s
