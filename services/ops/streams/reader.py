"""Reading a snapshot of a topic: every partition from a start offset up to its end when reading began."""

from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer

from services.ops.streams.positions import end_offsets, partitions_of, running
from services.ops.streams.selection import Record, Selection
from sluice.client.kafka_auth import KafkaConnection


async def read_records(kafka: KafkaConnection, topic: str, selection: Selection) -> AsyncIterator[Record]:
    """The selected records of ``topic``, partition by partition interleaved as fetched, each in offset order.

    Messages published after reading began are not read, so the read always ends. A start offset below the
    log start (retention deleted it) begins at the earliest retained message.
    """
    consumer = AIOKafkaConsumer(
        **kafka.client_options(
            enable_auto_commit=False, auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024
        )
    )
    async with running(consumer):
        partitions = [tp for tp in await partitions_of(consumer, topic) if selection.takes_partition(tp.partition)]
        if not partitions:
            return
        ends = await end_offsets(consumer, partitions)
        stops = {tp: selection.stop_offset(ends[tp]) for tp in partitions}
        open_partitions = {tp for tp in partitions if selection.start_offset() < stops[tp]}
        if not open_partitions:
            return
        consumer.assign(list(open_partitions))
        for tp in open_partitions:
            consumer.seek(tp, selection.start_offset())
        while open_partitions:
            fetched = await consumer.getmany(*open_partitions, timeout_ms=1000)
            for tp, messages in fetched.items():
                for message in messages:
                    if message.offset >= stops[tp]:
                        break
                    record = Record(
                        topic, tp.partition, message.offset, message.timestamp, message.key, message.value,
                        tuple(message.headers or ()),
                    )  # fmt: skip
                    if selection.takes(record):
                        yield record
            for tp in list(open_partitions):
                if await consumer.position(tp) >= stops[tp]:
                    open_partitions.discard(tp)
