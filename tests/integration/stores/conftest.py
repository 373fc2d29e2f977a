"""Stores over the real per-test database; jobs are made through JobStore's public path."""

from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from shared.records import JobRecord, NewJob
from shared.stores.jobs import Created, JobStore
from shared.stores.results import ResultStore
from tests.support.jobs import new_job

MakeJob = Callable[..., Awaitable[JobRecord]]


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
