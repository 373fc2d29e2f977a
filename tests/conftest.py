"""Suite-wide infrastructure: one broker, Postgres server and Redis per run; names unique per test."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from services.ops.devstack.postgres import create_database, drop_database
from tests.support import infra
from tests.support.pipeline import Pipeline


@pytest.fixture(scope="session")
def infra_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infra")


@pytest.fixture(scope="session")
def kafka_address(infra_dir: Path) -> Iterator[str]:
    with infra.kafka(infra_dir) as address:
        yield address


@pytest.fixture(scope="session")
def postgres_server_url(infra_dir: Path) -> Iterator[str]:
    with infra.postgres(infra_dir) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(infra_dir: Path) -> Iterator[str]:
    with infra.redis(infra_dir) as url:
        yield url


def unique_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topic_prefix() -> str:
    return unique_name("t")


@pytest.fixture
async def database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = unique_name("sluice_t_")
    url = await create_database(postgres_server_url, name)
    yield url
    await drop_database(postgres_server_url, name)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's database with Sluice's schema applied."""
    from shared.config import PostgresSettings
    from shared.postgres import apply_migrations, open_pool

    pool = await open_pool(PostgresSettings(url=database_url))
    await apply_migrations(pool)
    yield pool
    await pool.close()


@pytest.fixture
def service_env(kafka_address: str, database_url: str, redis_url: str, topic_prefix: str) -> dict[str, str]:
    """Environment that points every service at this test's topics and database."""
    return stack_env(kafka_address, database_url, redis_url, topic_prefix)


def stack_env(kafka_address: str, database_url: str, redis_url: str, topic_prefix: str) -> dict[str, str]:
    """Environment that points every service at these topics and this database, with groups of their own."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_address,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SLUICE_KAFKA_TOPIC_PREFIX": topic_prefix,
        "SLUICE_KAFKA_TASK_PARTITIONS": "4",
        "SLUICE_KAFKA_RESULT_PARTITIONS": "4",
        "SLUICE_PROCESSOR_GROUP_ID": unique_name("processor-"),
        "SLUICE_AGGREGATOR_GROUP_ID": unique_name("aggregator-"),
        "SLUICE_INTAKE_REQUESTS_GROUP_ID": unique_name("intake-"),
        "SLUICE_KINDS_WEB_ALLOW_NETWORKS": '["127.0.0.0/8"]',
        "SLUICE_AGGREGATOR_PROGRESS_INTERVAL_S": "0.2",
        # The shortest allowed: a killed member's partitions move on after 3 s, and a consumer joins its group in
        # about a heartbeat (a third of this) plus a second; the production default is 10 s.
        "SLUICE_KAFKA_SESSION_TIMEOUT_MS": "3000",
    }


@pytest.fixture
def pipeline(service_env: dict[str, str], tmp_path: Path) -> Iterator[Pipeline]:
    """The three data-path services, started and ready; stopped (and their logs kept) after the test."""
    running = Pipeline(service_env, tmp_path / "services.log")
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
async def module_database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh, empty database shared by one module's tests, dropped afterwards."""
    name = unique_name("sluice_m_")
    url = await create_database(postgres_server_url, name)
    yield url
    await drop_database(postgres_server_url, name)


@pytest.fixture(scope="module")
def module_service_env(kafka_address: str, module_database_url: str, redis_url: str) -> dict[str, str]:
    """Like service_env, for a stack one module's tests share: its own topics, groups and database."""
    return stack_env(kafka_address, module_database_url, redis_url, unique_name("t"))


@pytest.fixture(scope="module")
def module_pipeline(module_service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The three data-path services shared by one module's tests (a start-up takes seconds): tests that neither
    break a service nor need settings of their own use it, each with its own jobs (and tenant where it counts)."""
    running = Pipeline(module_service_env, tmp_path_factory.mktemp("module") / "services.log")
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
async def module_db(module_service_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the module's database with Sluice's schema applied."""
    from shared.config import PostgresSettings
    from shared.postgres import apply_migrations, open_pool

    pool = await open_pool(PostgresSettings(url=module_service_env["DATABASE_URL"]))
    await apply_migrations(pool)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    return asyncio.DefaultEventLoopPolicy()
