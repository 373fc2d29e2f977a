"""A full restart on the same data directory: topics, messages, committed offsets, users, ACLs and certificates
come back; a data directory of another shape is refused."""

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.ops.devstack.errors import DataDirMismatch
from services.ops.devstack.kafka import KafkaCluster, KafkaSecurity, running_kafka
from tests.integration.devstack.kafka.clients import create_topic, produce, read_partition, unique
from tests.support.kafka_required import kafka_tools
from tests.support.poll import eventually

pytestmark = pytest.mark.kafka


@pytest.mark.cluster
def test_a_full_restart_keeps_topics_data_and_committed_offsets(kafka_jars: str, tmp_path: Path) -> None:
    data_dir, topic, group = tmp_path / "kafka", unique("durable"), unique("group")
    values = [f"kept-{index}".encode() for index in range(100)]
    with running_kafka(data_dir, nodes=3) as cluster:
        bootstrap = cluster.bootstrap
        asyncio.run(write_and_commit(cluster, topic, group, values, committed=40))
    with running_kafka(data_dir, nodes=3) as cluster:
        assert cluster.bootstrap == bootstrap
        assert asyncio.run(committed_offset(cluster, topic, group)) == 40
        assert asyncio.run(read_partition(cluster.client_options(), topic, len(values))) == values
    with pytest.raises(DataDirMismatch, match="3-node cluster, not 1"):
        with running_kafka(data_dir, nodes=1):
            pass


def test_a_secured_cluster_keeps_its_users_acls_and_certificates_across_a_restart(
    kafka_jars: str, tmp_path: Path
) -> None:
    data_dir, topic = tmp_path / "kafka", unique("secured")
    security = KafkaSecurity({"alice": "alice-secret"})
    with kafka_tools(), running_kafka(data_dir, security=security) as cluster:  # openssl makes the certificates
        asyncio.run(create_topic(cluster, topic))
        cluster.grant("User:alice", ["Write", "Read"], topics=[topic])
        asyncio.run(produce(cluster.client_options("alice", "alice-secret"), topic, [b"before"]))
        assert cluster.access.ca_file is not None
        ca_before = cluster.access.ca_file.read_bytes()
    with running_kafka(data_dir, security=security) as cluster:
        assert cluster.access.ca_file is not None and cluster.access.ca_file.read_bytes() == ca_before
        alice = cluster.client_options("alice", "alice-secret")
        asyncio.run(produce(alice, topic, [b"after"]))
        assert asyncio.run(read_partition(alice, topic, 2)) == [b"before", b"after"]
    with pytest.raises(DataDirMismatch, match="holds a secured cluster"):
        with running_kafka(data_dir):
            pass


async def write_and_commit(cluster: KafkaCluster, topic: str, group: str, values: list[bytes], committed: int) -> None:
    """Create a replicated topic, write values with acks=all and commit `committed` as the group's offset."""
    await create_topic(cluster, topic, replicas=3, **{"min.insync.replicas": "2"})
    await produce(cluster.client_options(), topic, values, acks="all")
    consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **cluster.client_options())
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.commit({TopicPartition(topic, 0): committed})
    finally:
        await consumer.stop()


async def committed_offset(cluster: KafkaCluster, topic: str, group: str) -> int:
    """The group's committed offset on partition 0 of topic, once the group's coordinator answers for it.

    Right after a restart the coordinator may still be moving. OffsetFetch then answers NOT_COORDINATOR for the
    whole group, an error aiokafka drops (its admin client and its consumer's committed() alike), answering as if
    nothing were committed. A partition that was asked for and never committed is listed with offset -1, so one
    missing from the answer is that dropped error: ask again, with a new coordinator lookup each time.
    """
    partition = TopicPartition(topic, 0)
    async with cluster.admin_client() as admin:

        async def listed() -> int | None:
            offsets = await admin.list_consumer_group_offsets(group, partitions=[partition])
            return offsets[partition].offset if partition in offsets else None

        return await eventually(listed)
