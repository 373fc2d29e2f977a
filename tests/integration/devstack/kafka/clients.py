"""aiokafka round trips against a KafkaCluster: unique names, topics whose partitions all have a leader, sends,
and reads without a group."""

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic

from services.ops.devstack.kafka import KafkaCluster
from tests.support.poll import eventually


def unique(prefix: str) -> str:
    """A topic or group name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def create_topic(cluster: KafkaCluster, name: str, partitions: int = 1, replicas: int = 1, **configs: str) -> str:
    """Create a topic and wait until the metadata lists every partition with a leader."""
    async with cluster.admin_client() as admin:
        await admin.create_topics([NewTopic(name, partitions, replicas, topic_configs=configs)])

        async def all_led() -> bool | None:
            # Not cluster.partition_state: it raises (StopIteration, as RuntimeError) until the metadata lists
            # the partition, which a just-created topic's may not yet.
            (described,) = await admin.describe_topics([name])
            leaders = [state["leader"] for state in described["partitions"]]
            return True if len(leaders) == partitions and min(leaders) >= 0 else None

        await eventually(all_led)
    return name


async def produce(options: dict[str, Any], topic: str, values: list[bytes], **producer_options: Any) -> None:
    """Send each value in turn and wait for its acknowledgement."""
    producer = AIOKafkaProducer(**options, **producer_options)
    try:
        await producer.start()
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()  # also after a failed start, which leaves connections open


async def read_partition(options: dict[str, Any], topic: str, count: int, partition: int = 0) -> list[bytes]:
    """The first `count` values of one partition, read without a group (nothing committed)."""
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
    try:
        await consumer.start()
        consumer.assign([TopicPartition(topic, partition)])
        await consumer.seek_to_beginning()
        values: list[bytes] = []
        async with asyncio.timeout(60):
            while len(values) < count:
                batches = await consumer.getmany(timeout_ms=500)
                values += [record.value for records in batches.values() for record in records]
        return values
    finally:
        await consumer.stop()


async def consume_one(options: dict[str, Any], topic: str, group: str) -> bytes:
    """The first value a new consumer group reads from topic."""
    consumer = AIOKafkaConsumer(topic, group_id=group, auto_offset_reset="earliest", **options)
    try:
        await consumer.start()
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
        return record.value
    finally:
        await consumer.stop()
