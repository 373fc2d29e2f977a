"""Rewinding (or forwarding) a consumer group: commit chosen offsets for it, found by offset or by time."""

from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from services.ops.streams.positions import answers_offsets_by_time, fetched_end_offsets, partitions_of, running
from services.ops.streams.reader import read_records
from services.ops.streams.selection import Selection
from sluice.client.kafka_auth import KafkaConnection


async def offsets_at_time(kafka: KafkaConnection, topic: str, moment: datetime) -> dict[int, int]:
    """Per partition, the first offset whose message timestamp is at or after ``moment`` (the end if none):
    the broker's ListOffsets by time where it answers correctly, else found by reading timestamps."""
    consumer = AIOKafkaConsumer(**kafka.client_options(enable_auto_commit=False))
    async with running(consumer):
        partitions = await partitions_of(consumer, topic)
        if await answers_offsets_by_time(consumer, partitions[0]):
            ends = {tp: int(offset) for tp, offset in (await consumer.end_offsets(partitions)).items()}
            at = await consumer.offsets_for_times({tp: int(moment.timestamp() * 1000) for tp in partitions})
            return {tp.partition: found.offset if (found := at.get(tp)) else ends[tp] for tp in partitions}
        ends = await fetched_end_offsets(consumer, partitions)
    found = {tp.partition: end for tp, end in ends.items()}
    seen: set[int] = set()
    async for record in read_records(kafka, topic, Selection(since=moment)):
        if record.partition not in seen:
            seen.add(record.partition)
            found[record.partition] = record.offset
    return found


async def rewind_group(kafka: KafkaConnection, group_id: str, topic: str, offsets: dict[int, int]) -> dict[int, int]:
    """Commit ``offsets`` (partition -> next offset to read) for ``group_id``; returns what is now committed.

    The group's consumers must be stopped: a live group rejects commits from outside it (real Kafka), or
    overwrites them with its own next commit.
    """
    consumer = AIOKafkaConsumer(**kafka.client_options(group_id=group_id, enable_auto_commit=False))
    async with running(consumer):
        partitions = [tp for tp in await partitions_of(consumer, topic) if tp.partition in offsets]
        consumer.assign(partitions)
        await consumer.commit({tp: OffsetAndMetadata(offsets[tp.partition], "") for tp in partitions})
        return {tp.partition: await consumer.committed(tp) for tp in partitions}


def uniform_offsets(partitions: list[TopicPartition], offset: int) -> dict[int, int]:
    return {tp.partition: offset for tp in partitions}
