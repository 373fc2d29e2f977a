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

from services.ops.devstack.postgres import drop_database
from sluice.contracts.topics import TopicNames
from tests.support import infra
from tests.support.pipeline import Pipeline
from tests.support.stack import DATA_PATH, FreshStacks, build_stack_env, new_database, schema_pool


@pytest.fixture(scope="session")
def infra_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infra")


@pytest.fixture(scope="session")
def suite_broker(infra_dir: Path) -> Iterator[infra.SuiteBroker]:
    """The run's broker (SLUICE_TEST_BROKER: tansu by default, kafka, kafka-cluster; or KAFKA_BOOTSTRAP_SERVERS)."""
    with infra.kafka(infra_dir / "broker") as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_address(suite_broker: infra.SuiteBroker) -> str:
    return suite_broker.bootstrap


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
    suite_broker: infra.SuiteBroker, stack_database_url: str, redis_url: str, stack_overrides: dict[str, str]
) -> dict[str, str]:
    """The environment of the module's stack: its database, topics and groups, and its settings."""
    settings = {**suite_broker.stack_env(), **stack_overrides}
    return build_stack_env(suite_broker.bootstrap, stack_database_url, redis_url, settings)


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
    suite_broker: infra.SuiteBroker,
    postgres_server_url: str,
    redis_url: str,
    stack_overrides: dict[str, str],
    stack_services: tuple[str, ...],
    tmp_path: Path,
) -> AsyncIterator[FreshStacks]:
    """Starts stacks of this test's own (`await fresh_stack.start(overrides)`), stopped when it ends."""
    infrastructure = (suite_broker.bootstrap, postgres_server_url, redis_url)
    settings = {**suite_broker.stack_env(), **stack_overrides}
    stacks = FreshStacks(infrastructure, settings, stack_services, tmp_path)
    try:
        yield stacks
    finally:
        await stacks.close()


@pytest.fixture
def own_broker(suite_broker: infra.SuiteBroker, tmp_path: Path) -> Iterator[infra.SuiteBroker]:
    """A broker of the run's kind (Tansu, or Apache Kafka with as many nodes) only this test uses, so pausing it
    disturbs no other test."""
    choice = suite_broker.started.choice if suite_broker.started else infra.requested_broker()
    with infra.kafka(tmp_path / "own-broker", choice) as broker:
        yield broker
