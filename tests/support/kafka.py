"""Talking to the broker directly from tests: publish raw bytes, read a topic, read a group's committed offsets."""

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.structs import RecordMetadata


async def produce(
    address: str, topic: str, value: bytes, *, key: bytes | None = None, headers: list[tuple[str, bytes]] | None = None
) -> RecordMetadata:
    producer = AIOKafkaProducer(bootstrap_servers=address, acks="all")
    await producer.start()
    try:
        return await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def read_until(
    address: str, topic: str, done: Callable[[list[ConsumerRecord]], bool], timeout: float = 30.0
) -> list[ConsumerRecord]:
    """Read the topic from the start (no group) until ``done(records so far)`` holds; TimeoutError otherwise."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=address, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(timeout):
            while not done(records):
                batch = await consumer.getmany(timeout_ms=200)
                for partition_records in batch.values():
                    records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def committed_offset(address: str, group_id: str, topic: str, partition: int) -> int | None:
    """The offset a consumer group has committed for one partition (None if nothing is committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=address, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, partition))
    finally:
        await consumer.stop()
