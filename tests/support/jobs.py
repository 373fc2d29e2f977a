"""Jobs as intake builds them, for store and dispatcher tests that write them through the stores' public path."""

from uuid import UUID, uuid4

from shared.records import NewJob
from sluice.contracts.events import Priority


def new_job(
    *,
    tenant: str = "acme",
    total_items: int = 4,
    idempotency_key: str | None = None,
    job_id: UUID | None = None,
    batch_size: int = 50,
) -> NewJob:
    """A job request as intake builds one from a REST submission; the arguments override the defaults."""
    return NewJob(
        job_id=job_id or uuid4(),
        tenant=tenant,
        kind="bench.noop",
        priority=Priority.NORMAL,
        options={"rounds": 2},
        callback_url=None,
        source="rest",
        idempotency_key=idempotency_key,
        request_fingerprint="f" * 64,
        total_items=total_items,
        total_batches=-(-total_items // batch_size),
    )
