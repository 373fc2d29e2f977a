"""A 3-node cluster losing a partition leader, killed or stopped, without losing an acknowledged message.

One cluster serves the module; each test leaves it whole again (every node running) for the next.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.ops.devstack.kafka import KafkaCluster, running_kafka
from tests.integration.devstack.kafka.clients import create_topic, read_partition, unique
from tests.support.poll import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.cluster]

REPLICATED = {"min.insync.replicas": "2"}


@pytest.fixture(scope="module")
def cluster(kafka_jars: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    with running_kafka(tmp_path_factory.mktemp("cluster") / "kafka", nodes=3) as cluster:
        yield cluster


@pytest.fixture
async def whole(cluster: KafkaCluster) -> AsyncIterator[KafkaCluster]:
    """The module's cluster; any node a test stopped or killed is started again after it."""
    yield cluster
    for node in cluster.nodes:
        if not node.running:
            await asyncio.to_thread(node.start)


async def test_acked_messages_survive_a_killed_leader_and_its_return(whole: KafkaCluster) -> None:
    topic = await create_topic(whole, unique("replicated"), replicas=3, **REPLICATED)
    options = whole.client_options()
    producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
    consumer = AIOKafkaConsumer(topic, group_id=unique("group"), auto_offset_reset="earliest", **options)
    await producer.start()
    await consumer.start()
    received: list[bytes] = []
    reader = asyncio.create_task(collect(consumer, received))
    acked: list[bytes] = []

    async def send(count: int) -> None:
        for _ in range(count):
            value = f"m{len(acked)}".encode()
            await producer.send_and_wait(topic, value, partition=0)
            acked.append(value)

    try:
        await send(50)
        leader = await whole.leader_of(topic, 0)
        assert leader is not None
        leader.kill()
        await send(1)
        new_leader = await whole.leader_of(topic, 0)
        assert new_leader is not None and new_leader is not leader
        await send(49)
        await asyncio.to_thread(leader.start)
        await eventually(lambda: in_sync(whole, topic, replicas=3), timeout=60)
        await send(50)

        async def received_all() -> bool | None:
            return True if set(received) >= set(acked) else None

        await eventually(received_all, timeout=60)
    finally:
        reader.cancel()
        await producer.stop()
        await consumer.stop()
    assert await read_partition(options, topic, len(acked)) == acked  # each acked message once, in order


async def test_a_gracefully_stopped_leader_hands_over_without_losing_a_message(whole: KafkaCluster) -> None:
    topic = await create_topic(whole, unique("handover"), replicas=3, **REPLICATED)
    values = [f"v{index}".encode() for index in range(20)]
    producer = AIOKafkaProducer(**whole.client_options(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values[:10]:
            await producer.send_and_wait(topic, value)
        leader = await whole.leader_of(topic, 0)
        assert leader is not None
        await asyncio.to_thread(leader.stop)
        for value in values[10:]:
            await producer.send_and_wait(topic, value)
        new_leader = await whole.leader_of(topic, 0)
        assert new_leader is not None and new_leader is not leader
    finally:
        await producer.stop()
    assert await read_partition(whole.client_options(), topic, len(values)) == values


async def collect(consumer: AIOKafkaConsumer, into: list[bytes]) -> None:
    """Append every value the consumer receives until cancelled."""
    async for record in consumer:
        into.append(record.value)


async def in_sync(cluster: KafkaCluster, topic: str, replicas: int) -> bool | None:
    """True when partition 0 of topic has `replicas` in-sync replicas (None until then)."""
    return True if len((await cluster.partition_state(topic, 0)).isr) == replicas else None
