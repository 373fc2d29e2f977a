"""Launching Apache Kafka: one node serving a consumer group, the class archive of the first run, and the missing
tools named with what to install."""

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from aiokafka import AIOKafkaConsumer

from services.ops.devstack.errors import JavaMissing, MavenMissing
from services.ops.devstack.kafka import KAFKA_VERSION, KafkaCluster, kafka_classpath, running_kafka
from tests.integration.devstack.kafka.clients import create_topic, produce, unique

pytestmark = pytest.mark.kafka


@pytest.fixture
def one_node(kafka_jars: str, tmp_path: Path) -> Iterator[KafkaCluster]:
    with running_kafka(tmp_path / "kafka") as cluster:
        yield cluster


async def test_one_node_round_trips_messages_through_a_consumer_group(one_node: KafkaCluster) -> None:
    topic, group = await create_topic(one_node, unique("single"), partitions=3), unique("group")
    values = [f"message-{index}".encode() for index in range(30)]
    await produce(one_node.client_options(), topic, values, acks="all")
    consumer = AIOKafkaConsumer(
        topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False, **one_node.client_options()
    )
    await consumer.start()
    try:
        received: list[bytes] = []
        async with asyncio.timeout(30):
            while len(received) < len(values):
                batches = await consumer.getmany(timeout_ms=500)
                received += [record.value for records in batches.values() for record in records]
        await consumer.commit()
    finally:
        await consumer.stop()
    assert sorted(received) == sorted(values)


def test_the_first_run_records_a_class_archive_that_later_runs_map(kafka_jars: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(Path(kafka_jars).parent, cache / KAFKA_VERSION / "libs")
    archive = cache / KAFKA_VERSION / "classes.jsa"
    with running_kafka(tmp_path / "kafka", cache_dir=cache):
        assert not archive.exists()
    assert archive.is_file() and not list((tmp_path / "kafka").glob("classes-*.jsa"))  # the draft was moved
    with running_kafka(tmp_path / "kafka", cache_dir=cache) as cluster:
        pid = cluster.nodes[0].pid
        assert pid is not None and f"-XX:SharedArchiveFile={archive}" in psutil.Process(pid).cmdline()


def test_a_missing_java_is_named_with_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaMissing, match=r"no `java` on PATH; install a Java 17\+ runtime \(Debian: apt-get"):
        with running_kafka(tmp_path / "kafka"):
            pass


def test_a_missing_maven_is_named_when_the_jars_are_not_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MavenMissing, match=r"no `mvn` on PATH; install Maven 3.6\+ \(Debian: apt-get install maven\)"):
        kafka_classpath(KAFKA_VERSION, tmp_path / "empty-cache")
