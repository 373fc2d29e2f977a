"""Per-test names for adapter tests: a fresh database and topic prefix each, on the suite's servers."""

from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.ops.devstack.postgres import drop_database
from tests.support.stack import new_database, schema_pool, unique_name


@pytest.fixture
def topic_prefix() -> str:
    return unique_name("t")


@pytest.fixture
async def database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name, url = await new_database(postgres_server_url, "sluice_t_")
    yield url
    await drop_database(postgres_server_url, name)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's database with Sluice's schema applied."""
    pool = await schema_pool(database_url)
    yield pool
    await pool.close()
