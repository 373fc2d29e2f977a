"""A job's task batches, published through the services' broker, spread evenly over the tasks partitions."""

import asyncio
from collections import Counter
from uuid import uuid4

from aiokafka import AIOKafkaConsumer
from opentelemetry.sdk.trace import TracerProvider

from shared.config import KafkaSettings
from shared.kafka import SendWindow, ensure_topics, make_broker


async def test_a_jobs_batches_land_on_every_tasks_partition_equally(kafka_address: str, topic_prefix: str) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka_address, topic_prefix=topic_prefix)
    await ensure_topics(settings)
    broker = make_broker(settings, client_id="test-partitioning", tracer_provider=TracerProvider())
    await broker.connect()
    job = uuid4()
    try:
        window = SendWindow(broker, 64)
        for index in range(48):
            await window.send(b"{}", settings.topics.tasks, key=f"{job}:{index}".encode())
        await window.flush()
    finally:
        await broker.stop()
    consumer = AIOKafkaConsumer(
        settings.topics.tasks, bootstrap_servers=kafka_address, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    per_partition: Counter[int] = Counter()
    try:
        async with asyncio.timeout(20):
            while sum(per_partition.values()) < 48:
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    per_partition[tp.partition] += len(records)
    finally:
        await consumer.stop()
    assert per_partition == dict.fromkeys(range(12), 4)
