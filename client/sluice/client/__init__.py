"""The Sluice client SDK: intake's REST API (sync and async) and the Kafka side (requests in, events out).

from sluice.client import SluiceClient

with SluiceClient("http://127.0.0.1:8000", api_key="...") as sluice:
    job = sluice.submit("web.page", ["https://example.com/"])
    sluice.wait(job.job_id, on_progress=lambda view: print(view.percent))
    for result in sluice.iter_results(job.job_id):
        ...
"""

from sluice.client.aio import AsyncSluiceClient
from sluice.client.auth import auth_headers
from sluice.client.errors import (
    ApiError,
    ClientError,
    IntakeUnreachable,
    NotAuthorized,
    NotFound,
    ServiceUnavailable,
    WaitTimedOut,
)
from sluice.client.items import ItemsUnreadable, read_items
from sluice.client.models import ItemResult, JobAccepted, JobCountsView, JobsPage, JobView, ResultsPage
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
    "EventConsumer",
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
    "ResultsPage",
    "ServiceUnavailable",
    "SluiceClient",
    "WaitTimedOut",
    "auth_headers",
    "job_events_consumer",
    "read_items",
    "results_consumer",
]
