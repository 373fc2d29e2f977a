"""Where a topic ends and where a consumer group has got to.

The broker's own answers (ListOffsets, offsets by time, the admin API's group offsets) are used where the broker
gives them correctly, which is checked by trying them; otherwise the fallbacks every Kafka-protocol broker answers
right: the high watermark of a fetch response, message timestamps, OffsetFetch per partition. (Tansu answers
ListOffsets by time wrongly, and breaks the connection when asked for all of a group's offsets; asked for named
partitions, as here, it answers right.)
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from services.ops.streams.errors import OpsError
from shared.compat import refresh_metadata
from sluice.client.kafka_auth import KafkaConnection

log = logging.getLogger(__name__)

END_OFFSETS_TIMEOUT_S = 15.0
GROUP_OFFSETS_TIMEOUT_S = 5.0
_FAR_FUTURE_MS = 100 * 365 * 86_400_000


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic`` (from metadata); OpsError if the topic does not exist."""
    numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        await refresh_metadata(consumer)
        numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        raise OpsError(f"topic {topic} does not exist")
    return [TopicPartition(topic, number) for number in sorted(numbers)]


async def answers_offsets_by_time(consumer: AIOKafkaConsumer, partition: TopicPartition) -> bool:
    """Whether the broker answers ListOffsets correctly, asked for a moment after every message there can be: a
    correct broker finds no offset (Tansu answers offset 0, as it does for any moment)."""
    try:
        found = await consumer.offsets_for_times({partition: int(time.time() * 1000) + _FAR_FUTURE_MS})
    except KafkaError as exc:
        log.info("the broker refuses ListOffsets by time (%s): reading message timestamps instead", exc)
        return False
    return found.get(partition) is None


async def end_offsets(consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
    """The offset after the last message of each partition: ListOffsets where the broker answers it correctly,
    else the high watermark a fetch response reports. The consumer (without a group) may be left with the
    partitions assigned and its position wherever the fetch was."""
    partitions = list(partitions)
    if partitions and await answers_offsets_by_time(consumer, partitions[0]):
        return {tp: int(offset) for tp, offset in (await consumer.end_offsets(partitions)).items()}
    return await fetched_end_offsets(consumer, partitions)


async def fetched_end_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The high watermarks fetch responses report: ``seek_to_end`` only puts each fetch near the end (on Tansu
    it lands short of it, never past it)."""
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    async with asyncio.timeout(END_OFFSETS_TIMEOUT_S):
        while any(consumer.highwater(tp) is None for tp in partitions):
            await consumer.getmany(*partitions, timeout_ms=200, max_records=1)
    return {tp: int(consumer.highwater(tp)) for tp in partitions}


async def committed_offsets(
    kafka: KafkaConnection, group_id: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The group's committed offset per partition, None where it has none: the admin API's group offsets in
    one request where the broker answers them, else OffsetFetch partition by partition (every broker does)."""
    partitions = list(partitions)
    listed = await _admin_group_offsets(kafka, group_id, partitions)
    if listed is not None:
        return listed
    consumer = AIOKafkaConsumer(**kafka.client_options(group_id=group_id, enable_auto_commit=False))
    async with running(consumer):
        return {tp: await consumer.committed(tp) for tp in partitions}


async def _admin_group_offsets(
    kafka: KafkaConnection, group_id: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, int | None] | None:
    """The admin API's answer, or None where the broker can't give it.

    A broker lists every partition asked for, with offset -1 where the group committed nothing; a partition
    missing from the answer means the answer carried a group-level error that aiokafka drops (NOT_COORDINATOR
    while the group's coordinator moves, as after a broker restart), so the question is asked again."""
    admin = AIOKafkaAdminClient(**kafka.client_options(request_timeout_ms=int(GROUP_OFFSETS_TIMEOUT_S * 1000)))
    try:
        await admin.start()
        async with asyncio.timeout(GROUP_OFFSETS_TIMEOUT_S):
            while set(listed := await admin.list_consumer_group_offsets(group_id, partitions=partitions)) < set(
                partitions
            ):
                await asyncio.sleep(0.1)  # the coordinator is moving: ask again within the deadline
    except (KafkaError, TimeoutError) as exc:
        log.info("the broker gives no group offsets through the admin API (%r): asking partition by partition", exc)
        return None
    finally:
        await admin.close()
    return {tp: meta.offset if meta.offset >= 0 else None for tp, meta in listed.items() if tp in set(partitions)}


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    end: int
    committed: int | None

    @property
    def lag(self) -> int:
        """Messages the group has yet to commit; a group that never committed lags by the whole partition."""
        return max(self.end - (self.committed or 0), 0)


def lag_by_partition(
    ends: Mapping[TopicPartition, int], committed: Mapping[TopicPartition, int | None]
) -> list[PartitionLag]:
    return [PartitionLag(tp.partition, end, committed.get(tp)) for tp, end in sorted(ends.items())]


@contextlib.asynccontextmanager
async def running(client: AIOKafkaConsumer) -> AsyncIterator[AIOKafkaConsumer]:
    """Start a consumer and always stop it, also when starting fails (no "unclosed consumer" warnings)."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise
    # Let the consumer's background tasks begin: aiokafka's stop() raises CancelledError when it cancels
    # a task that never ran (a consumer stopped right after start, without awaiting anything in between).
    await asyncio.sleep(0)
    try:
        yield client
    finally:
        await client.stop()
