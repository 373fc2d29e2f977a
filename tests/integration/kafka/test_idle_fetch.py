"""A service's consumers fetch with a longer wait while their topic is idle, and a short one once records come."""

import asyncio
from uuid import uuid4

from opentelemetry.sdk.trace import TracerProvider

from shared.config import KafkaSettings
from shared.kafka import IdleAwareConsumer, SendWindow, ensure_topics, make_broker


async def test_an_idle_subscribers_fetch_wait_grows_and_the_first_record_brings_it_back(
    kafka_address: str, topic_prefix: str
) -> None:
    settings = KafkaSettings(
        bootstrap_servers=kafka_address, topic_prefix=topic_prefix, fetch_max_wait_ms=50, idle_fetch_max_wait_ms=400
    )
    await ensure_topics(settings)
    broker = make_broker(settings, client_id="test-idle-fetch", tracer_provider=TracerProvider())
    received: asyncio.Queue[bytes] = asyncio.Queue()

    subscriber = broker.subscriber(
        settings.topics.tasks, group_id=f"idle-{uuid4().hex[:6]}", auto_offset_reset="earliest", fetch_max_wait_ms=50
    )

    @subscriber
    async def on_task(body: bytes) -> None:
        await received.put(body)

    await broker.start()
    try:
        consumer = subscriber.consumer
        assert isinstance(consumer, IdleAwareConsumer) and consumer.fetch_wait is not None
        async with asyncio.timeout(20):
            while consumer.fetch_wait.current_ms < 400:
                await asyncio.sleep(0.05)  # poll interval inside the deadline

        window = SendWindow(broker, 8)
        await window.send(b"first after the lull", settings.topics.tasks, key=b"k")
        await window.flush()
        async with asyncio.timeout(20):
            assert await received.get() == b"first after the lull"
        assert consumer.fetch_wait.current_ms == 50
    finally:
        await broker.stop()
