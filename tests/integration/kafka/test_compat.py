"""Every function of shared/compat.py against the real broker: an aiokafka or FastStream upgrade that moves one of
the private attributes they reach into fails the test named after it."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.protocol.fetch import FetchRequest, FetchRequest_v4
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider

from services.ops.streams.positions import running
from shared.compat import (
    FetchRound,
    assignment_of,
    connection_options,
    fetch_wait_ms,
    group_of,
    raw_producer,
    refresh_metadata,
    set_consumer_builder,
    set_fetch_wait_ms,
    wrap_fetch_round,
)
from shared.config import KafkaSettings
from shared.kafka import make_broker, supports_idempotence
from tests.support.kafka import produce, read_until
from tests.support.poll import eventually

PARTITIONS = 2


async def create_topic(address: str) -> str:
    name = f"compat-{uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()
    return name


@pytest.fixture
async def topic(kafka_address: str) -> str:
    return await create_topic(kafka_address)


@pytest.fixture
def group() -> str:
    return f"compat-{uuid4().hex[:8]}"


@pytest.fixture
async def broker(kafka_address: str, topic_prefix: str) -> AsyncIterator[KafkaBroker]:
    """A Sluice broker made as the services make theirs, not yet connected; stopped after the test."""
    settings = KafkaSettings(bootstrap_servers=kafka_address, topic_prefix=topic_prefix)
    broker = make_broker(settings, client_id="test-compat", tracer_provider=TracerProvider())
    yield broker
    await broker.stop()


async def test_fetch_wait_ms_reads_and_set_fetch_wait_ms_changes_the_wait_the_next_fetches_ask_for(
    kafka_address: str, topic: str, group: str
) -> None:
    asked: list[int] = []

    def recording(fetch: FetchRound) -> FetchRound:
        async def fetch_and_record(assignment: Any, node_id: int, request: FetchRequest) -> bool:
            asked.append(request.build(FetchRequest_v4).max_wait_time)  # the wait as it goes on the wire
            return await fetch(assignment, node_id, request)

        return fetch_and_record

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_address, group_id=group, fetch_max_wait_ms=123)
    async with running(consumer):
        wrap_fetch_round(consumer, recording)
        before = fetch_wait_ms(consumer)
        set_fetch_wait_ms(consumer, 321)
        after = fetch_wait_ms(consumer)

        async def fetched_with_the_new_wait() -> bool | None:
            return True if 321 in asked else None

        await eventually(fetched_with_the_new_wait, timeout=60)  # once the group is joined, fetches repeat

    assert (before, after) == (123, 321)
    assert set(asked) <= {123, 321}


async def test_wrap_fetch_round_puts_the_wrapper_in_the_fetch_that_brings_a_record(
    kafka_address: str, topic: str, group: str
) -> None:
    rounds: list[bool] = []

    def recording(fetch: FetchRound) -> FetchRound:
        async def fetch_and_record(*args: Any) -> bool:
            got_records = await fetch(*args)
            rounds.append(bool(got_records))
            return got_records

        return fetch_and_record

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_address, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False
    )
    async with running(consumer):
        wrap_fetch_round(consumer, recording)
        await produce(kafka_address, topic, b"wrapped")
        record = await asyncio.wait_for(consumer.getone(), timeout=30)

    assert record.value == b"wrapped"
    assert True in rounds  # the round trip that fetched it went through the wrapper


async def test_group_of_gives_the_consumers_group_and_an_empty_string_without_one(
    kafka_address: str, topic: str, group: str
) -> None:
    grouped = AIOKafkaConsumer(topic, bootstrap_servers=kafka_address, group_id=group)
    groupless = AIOKafkaConsumer(bootstrap_servers=kafka_address)
    async with running(grouped), running(groupless):
        assert (group_of(grouped), group_of(groupless)) == (group, "")


async def test_assignment_of_is_none_before_a_subscription_and_lists_the_partitions_after_a_join(
    kafka_address: str, topic: str, group: str
) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_address, group_id=group, enable_auto_commit=False)
    async with running(consumer):
        before = assignment_of(consumer)
        consumer.subscribe([topic])

        async def joined() -> frozenset[TopicPartition] | None:
            assignment = assignment_of(consumer)
            return assignment.tps if assignment is not None and assignment.tps else None

        assigned = await eventually(joined, timeout=60)
        states = [assignment_of(consumer).state_value(tp) for tp in assigned]  # type: ignore[union-attr]

    assert before is None
    assert assigned == {TopicPartition(topic, partition) for partition in range(PARTITIONS)}
    assert None not in states


async def test_refresh_metadata_makes_a_topic_created_after_the_consumer_started_known(kafka_address: str) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_address, enable_auto_commit=False)
    async with running(consumer):
        created_later = await create_topic(kafka_address)
        before = consumer.partitions_for_topic(created_later)

        async def known() -> set[int] | None:
            await refresh_metadata(consumer)
            return consumer.partitions_for_topic(created_later) or None

        after = await eventually(known)

    assert not before  # aiokafka would not look again for minutes (metadata_max_age_ms)
    assert after == set(range(PARTITIONS))


async def test_connection_options_hold_the_bootstrap_servers_and_the_idempotence_chosen_at_connect(
    kafka_address: str, broker: KafkaBroker
) -> None:
    await broker.connect()
    options = connection_options(broker)

    assert options["bootstrap_servers"] == [kafka_address]
    assert options["enable_idempotence"] is await supports_idempotence({"bootstrap_servers": kafka_address})


async def test_set_consumer_builder_makes_the_connected_brokers_subscribers_use_it(
    kafka_address: str, broker: KafkaBroker, topic: str, group: str
) -> None:
    built: list[AIOKafkaConsumer] = []

    def building(*topics: str, **options: Any) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(*topics, bootstrap_servers=kafka_address, **options)
        built.append(consumer)
        return consumer

    received: asyncio.Queue[bytes] = asyncio.Queue()
    subscriber = broker.subscriber(
        topic, group_id=group, auto_offset_reset="earliest", ack_policy=AckPolicy.NACK_ON_ERROR
    )

    @subscriber
    async def on_message(body: bytes) -> None:
        await received.put(body)

    await broker.connect()
    set_consumer_builder(broker, building)
    await broker.start()
    await produce(kafka_address, topic, b"through our builder")

    assert await asyncio.wait_for(received.get(), timeout=30) == b"through our builder"
    assert built == [subscriber.consumer]


async def test_raw_producer_is_the_connected_brokers_producer_and_sends_a_message_a_consumer_reads(
    kafka_address: str, broker: KafkaBroker, topic: str
) -> None:
    await broker.connect()
    producer = raw_producer(broker)
    sent = await producer.send_and_wait(topic, b"raw", key=b"k", partition=1)
    records = await read_until(kafka_address, topic, lambda records: len(records) >= 1)

    assert isinstance(producer, AIOKafkaProducer)
    assert [(r.partition, r.offset, r.key, r.value) for r in records] == [(1, sent.offset, b"k", b"raw")]
