"""Stores over the real per-test database; jobs are made through JobStore's public path."""

from collections.abc import Awaitable, Callable
from uuid import UUID, uuid4

import asyncpg
import pytest

from shared.records import JobRecord, NewJob
from shared.stores.jobs import Created, JobStore
from shared.stores.results import ResultStore
from sluice.contracts.events import Priority

MakeJob = Callable[..., Awaitable[JobRecord]]


def new_job(
    *,
    tenant: str = "acme",
    total_items: int = 4,
    idempotency_key: str | None = None,
    job_id: UUID | None = None,
    batch_size: int = 50,
) -> NewJob:
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


@pytest.fixture
def job_request() -> Callable[..., NewJob]:
    """Builds a NewJob as intake would; keyword arguments override the defaults."""
    return new_job


@pytest.fixture
def job_store(db: asyncpg.Pool) -> JobStore:
    return JobStore(db)


@pytest.fixture
def result_store(db: asyncpg.Pool) -> ResultStore:
    return ResultStore(db)


@pytest.fixture
def accepted_job(job_store: JobStore) -> MakeJob:
    """Create a job as intake does (create, then mark accepted) and return it as stored."""

    async def make(**fields) -> JobRecord:
        created = await job_store.create(new_job(**fields))
        assert isinstance(created, Created)
        await job_store.mark_accepted(created.job.job_id)
        stored = await job_store.get(created.job.tenant, created.job.job_id)
        assert stored is not None
        return stored

    return make
