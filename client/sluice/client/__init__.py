"""The Sluice client SDK: intake's REST API (sync and async) and the Kafka side (requests in, events out).

from sluice.client import SluiceClient

with SluiceClient("http://127.0.0.1:8000", api_key="...") as sluice:
    job = sluice.submit("web.page", ["https://example.com/"])
    sluice.wait(job.job_id, on_progress=lambda view: print(view.percent))
    for result in sluice.iter_results(job.job_id):
        ...

``wait`` and ``watch`` follow the job's event stream (SSE); every call is retried on 429 and 503 (after their
Retry-After) and on lost answers where that is safe, as ``RetryPolicy`` says; ``submit`` sends an Idempotency-Key.
"""

from sluice.client.aio import AsyncSluiceClient
from sluice.client.auth import auth_headers
from sluice.client.errors import (
    ApiError,
    ClientError,
    EventStreamBroken,
    IntakeUnreachable,
    NotAuthorized,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    WaitTimedOut,
)
from sluice.client.items import ItemsUnreadable, read_items
from sluice.client.models import (
    Dashboard,
    DeadLetter,
    DeadLettersPage,
    ItemResult,
    JobAccepted,
    JobCountsView,
    JobsPage,
    JobView,
    Readiness,
    ResultsPage,
)
from sluice.client.retries import RetryPolicy
from sluice.client.sync import SluiceClient

_KAFKA_NAMES = ("EventConsumer", "JobRequestPublisher", "job_events_consumer", "results_consumer")


def __getattr__(name: str) -> object:
    """The Kafka side is imported on first use: it needs aiokafka (``pip install 'sluice-client[kafka]'``)."""
    if name in _KAFKA_NAMES:
        from sluice.client import kafka

        return getattr(kafka, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ApiError",
    "AsyncSluiceClient",
    "ClientError",
    "Dashboard",
    "DeadLetter",
    "DeadLettersPage",
    "EventConsumer",
    "EventStreamBroken",
    "IntakeUnreachable",
    "ItemResult",
    "ItemsUnreadable",
    "JobAccepted",
    "JobCountsView",
    "JobRequestPublisher",
    "JobView",
    "JobsPage",
    "NotAuthorized",
    "NotFound",
    "RateLimited",
    "Readiness",
    "ResultsPage",
    "RetryPolicy",
    "ServiceUnavailable",
    "SluiceClient",
    "WaitTimedOut",
    "auth_headers",
    "job_events_consumer",
    "read_items",
    "results_consumer",
]
