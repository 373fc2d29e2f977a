"""What the operator tools read from the session's broker, pinned to the offsets written.

Each answer goes through the path the broker gets (its own ListOffsets, offsets by time and admin group offsets
where it answers them right; else the high watermark of a fetch, message timestamps and OffsetFetch per
partition, which every Kafka-protocol broker answers) and is checked against the other path too. Apache Kafka
answers offsets by time and grants producer ids; Tansu does neither (its offsets by time are wrong without an
error, its InitProducerId fails). Both answer group offsets for named partitions.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from services.ops.streams.positions import (
    _admin_group_offsets,
    answers_offsets_by_time,
    committed_offsets,
    end_offsets,
    fetched_end_offsets,
    running,
)
from services.ops.streams.reader import read_records
from services.ops.streams.rewind import offsets_at_time
from services.ops.streams.selection import Selection
from shared.kafka import supports_idempotence
from sluice.client.kafka_auth import KafkaConnection

PLAN = {
    0: [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10_000, 11_000],
    1: [500, 3500, 6500, 9500, 12_500],
    2: [],
}
"""Per partition, each message's timestamp in ms after the base moment, in offset order; partition 2 stays empty."""
ENDS = {0: 12, 1: 5, 2: 0}
BASE_AGO_MS = 10 * 60 * 1000
"""The base moment is ten minutes ago: within every broker's retention and accepted-timestamp window."""


@dataclass(frozen=True)
class Written:
    kafka: KafkaConnection
    topic: str
    base_ms: int

    @property
    def partitions(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, partition) for partition in PLAN]

    def moment(self, delta_ms: int) -> datetime:
        return datetime.fromtimestamp((self.base_ms + delta_ms) / 1000, UTC)


@pytest.fixture(scope="module")
async def written(kafka_address: str) -> Written:
    """A fresh topic holding PLAN's messages, written once for the module (its tests only read it)."""
    kafka = KafkaConnection(bootstrap_servers=kafka_address)
    topic, base_ms = f"features-{uuid4().hex[:10]}", int(datetime.now(UTC).timestamp() * 1000) - BASE_AGO_MS
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, len(PLAN), 1)])
    finally:
        await admin.close()
    sends = sorted((delta, partition) for partition, deltas in PLAN.items() for delta in deltas)
    producer = AIOKafkaProducer(**kafka.client_options(acks="all"))
    async with running(producer):  # type: ignore[arg-type]
        acks = [
            await producer.send_and_wait(
                topic, f"{partition}@{delta}".encode(), partition=partition, timestamp_ms=base_ms + delta
            )
            for delta, partition in sends
        ]
    landed = {partition: [ack.offset for ack in acks if ack.partition == partition] for partition in PLAN}
    assert landed == {partition: list(range(ENDS[partition])) for partition in PLAN}
    return Written(kafka, topic, base_ms)


@pytest.fixture
async def consumer(written: Written) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer without a group."""
    async with running(AIOKafkaConsumer(**written.kafka.client_options(enable_auto_commit=False))) as started:
        yield started


async def test_the_end_offsets_are_the_counts_written_by_the_brokers_path_and_by_fetching(
    written: Written, consumer: AIOKafkaConsumer
) -> None:
    expected = {tp: ENDS[tp.partition] for tp in written.partitions}

    assert await end_offsets(consumer, written.partitions) == expected
    async with running(AIOKafkaConsumer(**written.kafka.client_options(enable_auto_commit=False))) as fetching:
        assert await fetched_end_offsets(fetching, written.partitions) == expected


@pytest.mark.parametrize(
    ("delta_ms", "expected"),
    [
        (-60_000, {0: 0, 1: 0, 2: 0}),  # before every message
        (3000, {0: 3, 1: 1, 2: 0}),  # exactly partition 0's fourth timestamp
        (6600, {0: 7, 1: 3, 2: 0}),  # between timestamps
        (11_000, {0: 11, 1: 4, 2: 0}),  # partition 0's last message
        (12_501, ENDS),  # after every message: the ends
    ],
)
async def test_offsets_at_a_moment_are_the_first_stamped_at_or_after_it_by_either_path(
    written: Written, consumer: AIOKafkaConsumer, delta_ms: int, expected: dict[int, int]
) -> None:
    moment = written.moment(delta_ms)

    assert await offsets_at_time(written.kafka, written.topic, moment) == expected
    scanned = dict(ENDS)
    async for record in read_records(written.kafka, written.topic, Selection(since=moment)):
        scanned[record.partition] = min(scanned[record.partition], record.offset)
    assert scanned == expected
    if await answers_offsets_by_time(consumer, written.partitions[0]):
        asked = {tp: int(moment.timestamp() * 1000) for tp in written.partitions}
        found = await consumer.offsets_for_times(asked)
        by_broker = {tp.partition: answer.offset if (answer := found[tp]) else ENDS[tp.partition] for tp in found}
        assert by_broker == expected


async def test_reading_since_a_moment_yields_exactly_the_messages_stamped_from_then_with_their_timestamps(
    written: Written,
) -> None:
    records = [r async for r in read_records(written.kafka, written.topic, Selection(since=written.moment(6600)))]

    assert sorted((r.partition, r.offset, r.timestamp_ms - written.base_ms) for r in records) == [
        (0, 7, 7000),
        (0, 8, 8000),
        (0, 9, 9000),
        (0, 10, 10_000),
        (0, 11, 11_000),
        (1, 3, 9500),
        (1, 4, 12_500),
    ]
    assert {r.value for r in records} == {f"{r.partition}@{r.timestamp_ms - written.base_ms}".encode() for r in records}


async def test_committed_offsets_are_what_the_group_committed_and_none_where_it_committed_nothing(
    written: Written,
) -> None:
    group = f"g-{uuid4().hex[:8]}"
    tp0, tp1, tp2 = written.partitions
    committer = AIOKafkaConsumer(**written.kafka.client_options(group_id=group, enable_auto_commit=False))
    async with running(committer):
        committer.assign(written.partitions)
        await committer.commit({tp0: 4, tp1: 2})
        one_by_one = {tp: await committer.committed(tp) for tp in written.partitions}
    expected = {tp0: 4, tp1: 2, tp2: None}

    assert await committed_offsets(written.kafka, group, written.partitions) == expected
    assert one_by_one == expected
    # Both brokers answer the admin API's group offsets when the partitions are named (Tansu's answer breaks the
    # connection only when asked for all of a group's partitions), so that is the path committed_offsets takes.
    assert await _admin_group_offsets(written.kafka, group, written.partitions) == expected


async def test_supports_idempotence_says_whether_an_idempotent_producer_starts_and_writes_once(
    written: Written,
) -> None:
    topic = f"idempotent-{uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(**written.kafka.client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**written.kafka.client_options(enable_idempotence=True, acks="all"))

    if await supports_idempotence(written.kafka.client_options()):
        async with running(producer):  # type: ignore[arg-type]
            offsets = [(await producer.send_and_wait(topic, f"i{n}".encode())).offset for n in range(5)]
        read_back = [record.value async for record in read_records(written.kafka, topic, Selection())]
        assert offsets == [0, 1, 2, 3, 4]
        assert read_back == [f"i{n}".encode() for n in range(5)]
    else:
        with pytest.raises(KafkaError):
            async with running(producer):  # type: ignore[arg-type]
                pass


async def test_the_broker_answers_offsets_by_time_exactly_where_it_grants_producer_ids(
    written: Written, consumer: AIOKafkaConsumer
) -> None:
    """Both on Apache Kafka, neither on Tansu. A broker with one but not the other (a Tansu upgrade) fails here,
    so whoever upgrades it looks again at which fallbacks are still needed."""
    by_time = await answers_offsets_by_time(consumer, written.partitions[0])

    assert by_time is await supports_idempotence(written.kafka.client_options())
