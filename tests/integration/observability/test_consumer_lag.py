"""Consumer lag read from the consumer's own state, against the real broker: behind while a poll is held, zero once
every message is handled and committed."""

import asyncio
import uuid

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.sdk.trace import TracerProvider

from shared.config import KafkaSettings
from shared.kafka import make_broker
from shared.lag import BrokerLag
from tests.support.kafka import produce
from tests.support.poll import eventually


async def test_lag_is_what_is_left_behind_the_poll_in_hand_then_zero_after_the_commit(
    kafka_address: str, topic_prefix: str
) -> None:
    topic, group = f"{topic_prefix}.lag", f"lag-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_address)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    for n in range(5):
        await produce(kafka_address, topic, str(n).encode())

    broker = make_broker(KafkaSettings(bootstrap_servers=kafka_address), client_id="lag-test",
                         tracer_provider=TracerProvider())  # fmt: skip
    gate, first_poll_held = asyncio.Event(), asyncio.Event()

    @broker.subscriber(topic, batch=True, max_records=2, group_id=group, auto_offset_reset="earliest",
                       ack_policy=AckPolicy.NACK_ON_ERROR)  # fmt: skip
    async def handle(message: KafkaMessage) -> None:
        first_poll_held.set()
        await gate.wait()

    lag = BrokerLag(broker)
    await broker.start()
    try:
        await asyncio.wait_for(first_poll_held.wait(), timeout=30)
        assert list(lag.readings()) == [(topic, 0, group, 3)], "5 in the partition, 2 in hand"
        gate.set()

        async def caught_up() -> bool | None:
            return True if list(lag.readings()) == [(topic, 0, group, 0)] else None

        await eventually(caught_up, timeout=30)
    finally:
        gate.set()
        await broker.stop()
