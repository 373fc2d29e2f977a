"""Re-publishing recorded events (results or job events) to a target topic, for a consumer that lost data."""

from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from services.ops.streams.reader import read_records
from services.ops.streams.selection import Selection
from sluice.client.kafka_auth import KafkaConnection
from sluice.contracts.headers import REPLAYED_FROM_HEADER

"""On every replayed message: ``topic/partition/offset`` of the original."""


@dataclass(frozen=True)
class ReplayOutcome:
    source: str
    target: str
    published: int


async def replay(kafka: KafkaConnection, source: str, target: str, selection: Selection) -> ReplayOutcome:
    """Publish every selected message of ``source`` to ``target`` with its key, value and headers (acks=all),
    plus REPLAYED_FROM_HEADER; returns once the broker acknowledged every one."""
    producer = AIOKafkaProducer(**kafka.client_options(acks="all", linger_ms=5))
    await producer.start()
    published = 0
    try:
        pending = []
        async for record in read_records(kafka, source, selection):
            origin = f"{record.topic}/{record.partition}/{record.offset}".encode()
            headers = [*record.headers, (REPLAYED_FROM_HEADER, origin)]
            pending.append(await producer.send(target, record.value, key=record.key, headers=headers))
            if len(pending) >= 500:
                for future in pending:
                    await future
                published += len(pending)
                pending.clear()
        for future in pending:
            await future
        published += len(pending)
    finally:
        await producer.stop()
    return ReplayOutcome(source, target, published)
