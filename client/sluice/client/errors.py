"""What the client raises: one tree under SluiceError, each error saying what to do next."""

from sluice.errors import SluiceError


class ClientError(SluiceError):
    """Root of the client's errors."""


class IntakeUnreachable(ClientError):
    """No answer from intake at the configured URL (wrong URL, intake down, network), after the retries."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(f"cannot reach intake at {url}: {detail}")
        self.url = url


class ApiError(ClientError):
    """Intake answered with an error body ``{"error": {code, message, field}}``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        where = f" ({field})" if field else ""
        super().__init__(f"intake answered {status} {code}: {message}{where}")
        self.status, self.code, self.message, self.field = status, code, message, field


class NotAuthorized(ApiError):
    """401/403: the API key is missing, unknown or not allowed to do this."""


class NotFound(ApiError):
    """404: no such job (or dead letter) for this tenant."""


class ServiceUnavailable(ApiError):
    """503: intake's broker or database is down (a submission was not accepted), still so after the retries;
    try again after ``retry_after_s``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, retry_after_s: float = 5.0):
        super().__init__(status, code, message, field)
        self.retry_after_s = retry_after_s


class RateLimited(ApiError):
    """429: over the plan's request rate or waiting-job limit, still so after the retries (or the Retry-After was
    beyond the retry deadline); try again after ``retry_after_s``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, retry_after_s: float = 5.0):
        super().__init__(status, code, message, field)
        self.retry_after_s = retry_after_s


class EventStreamBroken(ClientError):
    """The job's event stream (SSE) sent something that is not a Sluice job event."""


class WaitTimedOut(ClientError):
    """``wait`` (or ``watch``) gave up before the job reached a terminal status."""

    def __init__(self, job_id: str, timeout_s: float, last_status: str) -> None:
        super().__init__(f"job {job_id} still {last_status} after {timeout_s:g}s")
        self.job_id, self.timeout_s, self.last_status = job_id, timeout_s, last_status
