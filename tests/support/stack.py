"""The environment every e2e stack runs with, and the stacks started for one test (see tests/conftest.py)."""

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import asyncpg

from services.ops.devstack.postgres import create_database, drop_database
from shared.config import PostgresSettings
from shared.postgres import apply_migrations, open_pool
from tests.support.pipeline import Pipeline

DATA_PATH = ("intake", "processor", "aggregator")
"""The services a stack runs unless its module asks for others (the `stack_services` fixture)."""


def unique_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def build_stack_env(
    kafka_address: str, database_url: str, redis_url: str, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment that points every service at this database and at topics and consumer groups of their own
    (fresh names each call), with the suite's settings; ``overrides`` last."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_address,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SLUICE_KAFKA_TOPIC_PREFIX": unique_name("t"),
        "SLUICE_KAFKA_TASK_PARTITIONS": "4",
        "SLUICE_KAFKA_RESULT_PARTITIONS": "4",
        "SLUICE_PROCESSOR_GROUP_ID": unique_name("processor-"),
        "SLUICE_AGGREGATOR_GROUP_ID": unique_name("aggregator-"),
        "SLUICE_INTAKE_REQUESTS_GROUP_ID": unique_name("intake-"),
        "SLUICE_RESCAN_TRIGGERS_GROUP_ID": unique_name("triggers-"),
        "SLUICE_KINDS_WEB_ALLOW_NETWORKS": '["127.0.0.0/8"]',
        "SLUICE_AGGREGATOR_PROGRESS_INTERVAL_S": "0.2",
        # The shortest allowed: a killed member's partitions move on after 3 s, and a consumer joins its group in
        # about a heartbeat (a third of this) plus a second; the production default is 10 s.
        "SLUICE_KAFKA_SESSION_TIMEOUT_MS": "3000",
        **(overrides or {}),
    }


async def new_database(postgres_server_url: str, prefix: str) -> tuple[str, str]:
    """A fresh, empty database on the suite's server: (its name, its URL)."""
    name = unique_name(prefix)
    return name, await create_database(postgres_server_url, name)


async def schema_pool(database_url: str) -> asyncpg.Pool:
    """A pool on the database with Sluice's schema applied (the services apply it too; whichever is first)."""
    pool = await open_pool(PostgresSettings(url=database_url))
    await apply_migrations(pool)
    return pool


class FreshStacks:
    """Stacks started for one test that breaks or restarts a service, asserts something stack-wide, or needs
    settings no other test of its module may share. Each gets a database, topics and groups of its own, from the
    same `build_stack_env` as the module's stack (with the module's `stack_overrides`); all are stopped, their pools
    closed and their databases dropped when the test ends (`close`)."""

    def __init__(
        self,
        infra: tuple[str, str, str],
        overrides: Mapping[str, str],
        services: Sequence[str],
        log_dir: Path,
    ) -> None:
        self._kafka, self._postgres_server, self._redis = infra
        self._overrides, self._services, self._log_dir = dict(overrides), tuple(services), log_dir
        self._running: list[Pipeline] = []
        self._pools: list[asyncpg.Pool] = []
        self._databases: list[str] = []

    async def start(
        self, overrides: Mapping[str, str] | None = None, services: Sequence[str] | None = None
    ) -> Pipeline:
        """A stack with ``overrides`` on top of the module's settings, running ``services`` (the module's when
        None), ready to serve. An override of DATABASE_URL (a server the test owns) replaces the fresh database."""
        overrides = dict(overrides or {})
        if "DATABASE_URL" not in overrides:
            name, overrides["DATABASE_URL"] = await new_database(self._postgres_server, "sluice_f_")
            self._databases.append(name)
        env = build_stack_env(self._kafka, overrides["DATABASE_URL"], self._redis, {**self._overrides, **overrides})
        pipeline = Pipeline(env, self._log_dir / f"services-{len(self._running) + 1}.log")
        self._running.append(pipeline)  # before starting: a stack that fails to start is stopped all the same
        pipeline.start(self._services if services is None else services)
        return pipeline

    async def db(self, pipeline: Pipeline) -> asyncpg.Pool:
        """A pool on the stack's database, closed with the stacks."""
        pool = await schema_pool(pipeline.database_url)
        self._pools.append(pool)
        return pool

    async def close(self) -> None:
        try:
            for pool in self._pools:
                await pool.close()
        finally:
            for pipeline in self._running:
                pipeline.stop()
            for name in self._databases:  # after the services: DROP ... WITH (FORCE) would cut them off
                await drop_database(self._postgres_server, name)
