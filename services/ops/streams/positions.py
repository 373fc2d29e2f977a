"""Where a topic ends and where a consumer group has got to, without ListOffsets or admin offset listing."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.ops.streams.errors import OpsError

END_OFFSETS_TIMEOUT_S = 15.0


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic`` (from metadata); OpsError if the topic does not exist."""
    numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        await consumer._client.force_metadata_update()  # noqa: SLF001 -- aiokafka has no public refresh
        numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        raise OpsError(f"topic {topic} does not exist")
    return [TopicPartition(topic, number) for number in sorted(numbers)]


async def end_offsets(consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
    """The offset after the last message of each partition: the high watermark a fetch response reports.

    The consumer (without a group) gets the partitions assigned; ``seek_to_end`` only puts each fetch near
    the end (on Tansu it lands short of it, never past it). Its position is left where the fetch was.
    """
    partitions = list(partitions)
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    async with asyncio.timeout(END_OFFSETS_TIMEOUT_S):
        while any(consumer.highwater(tp) is None for tp in partitions):
            await consumer.getmany(*partitions, timeout_ms=200, max_records=1)
    return {tp: int(consumer.highwater(tp)) for tp in partitions}


async def committed_offsets(
    bootstrap_servers: str, group_id: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The group's committed offset per partition (OffsetFetch, which every broker answers), None if none."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group_id, enable_auto_commit=False)
    async with running(consumer):
        return {tp: await consumer.committed(tp) for tp in partitions}


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
