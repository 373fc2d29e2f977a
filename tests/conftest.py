"""Suite-wide infrastructure (one broker, Postgres server and Redis per run) and the e2e stack family.

A stack is the services running as processes against that infrastructure, with a database, topics and consumer
groups of their own (`stack_env`). Start-up takes seconds, so each module shares one (`stack`); its tests use
their own jobs and tenants. A module asks for settings or services of its own by overriding `stack_overrides`
or `stack_services` (module-scoped). A test that breaks or restarts a service, or asserts something stack-wide,
starts its own through `fresh_stack`, which builds the same environment with the module's settings.
"""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from services.ops.devstack.broker import running_tansu
from services.ops.devstack.postgres import drop_database
from sluice.contracts.topics import TopicNames
from tests.support import infra
from tests.support.pipeline import Pipeline
from tests.support.stack import DATA_PATH, FreshStacks, build_stack_env, new_database, schema_pool


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


@pytest.fixture(scope="module")
def stack_overrides() -> dict[str, str]:
    """Settings of this module's stacks on top of the suite's; a module overrides it (module scope)."""
    return {}


@pytest.fixture(scope="module")
def stack_services() -> tuple[str, ...]:
    """The services this module's stacks run (a name twice: two processes); a module overrides it."""
    return DATA_PATH


@pytest.fixture(scope="module")
async def stack_database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """The module's own database, dropped after the module."""
    name, url = await new_database(postgres_server_url, "sluice_m_")
    yield url
    await drop_database(postgres_server_url, name)


@pytest.fixture(scope="module")
def stack_env(
    kafka_address: str, stack_database_url: str, redis_url: str, stack_overrides: dict[str, str]
) -> dict[str, str]:
    """The environment of the module's stack: its database, topics and groups, and its settings."""
    return build_stack_env(kafka_address, stack_database_url, redis_url, stack_overrides)


@pytest.fixture(scope="module")
def stack(
    stack_env: dict[str, str], stack_services: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """The module's stack, started and ready; stopped (its log kept) after the module."""
    running = Pipeline(stack_env, tmp_path_factory.mktemp("stack") / "services.log")
    try:
        running.start(stack_services)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
async def stack_db(stack_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the module stack's database, with Sluice's schema applied."""
    pool = await schema_pool(stack_env["DATABASE_URL"])
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def stack_topics(stack_env: dict[str, str]) -> TopicNames:
    return TopicNames.for_prefix(stack_env["SLUICE_KAFKA_TOPIC_PREFIX"])


@pytest.fixture
async def fresh_stack(
    kafka_address: str,
    postgres_server_url: str,
    redis_url: str,
    stack_overrides: dict[str, str],
    stack_services: tuple[str, ...],
    tmp_path: Path,
) -> AsyncIterator[FreshStacks]:
    """Starts stacks of this test's own (`await fresh_stack.start(overrides)`), stopped when it ends."""
    stacks = FreshStacks((kafka_address, postgres_server_url, redis_url), stack_overrides, stack_services, tmp_path)
    try:
        yield stacks
    finally:
        await stacks.close()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[str]:
    """A broker only this test uses, so pausing it disturbs no other test."""
    with running_tansu(log_path=tmp_path / "tansu.log") as address:
        yield address
