"""Every reach into aiokafka's and FastStream's private attributes, in one place.

Both libraries are pinned exactly in pyproject.toml (aiokafka 0.14.0, FastStream 0.7.8), and
tests/integration/kafka/test_compat.py calls each function here against the real broker: an upgrade that moves
one of these attributes fails that test, by name, before anything else notices. Nothing else in Sluice touches a
private attribute of either library (SluiceBroker overrides FastStream's ``_connect`` through these too).
"""

from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.consumer.subscription_state import Assignment
from faststream.kafka import KafkaBroker

FetchRound = Callable[..., Awaitable[bool]]
"""aiokafka's one fetch round trip of a consumer; True when it added records."""


# aiokafka 0.14


def fetch_wait_ms(consumer: AIOKafkaConsumer) -> int:
    """How long the started consumer's fetches wait at the broker for data now."""
    return int(consumer._fetcher._fetch_max_wait_ms)


def set_fetch_wait_ms(consumer: AIOKafkaConsumer, wait_ms: int) -> None:
    """Change how long the started consumer's next fetches wait at the broker (aiokafka reads it per fetch)."""
    consumer._fetcher._fetch_max_wait_ms = wait_ms


def wrap_fetch_round(consumer: AIOKafkaConsumer, wrap: Callable[[FetchRound], FetchRound]) -> None:
    """Replace the started consumer's fetch round trip with ``wrap(original)``."""
    fetcher = consumer._fetcher
    fetcher._proc_fetch_request = wrap(fetcher._proc_fetch_request)


def group_of(consumer: AIOKafkaConsumer) -> str:
    """The consumer's group id ("" without a group): aiokafka exposes no getter."""
    return consumer._group_id or ""


def assignment_of(consumer: AIOKafkaConsumer) -> Assignment | None:
    """The consumer's current assignment with each partition's fetch state, None before one is made."""
    subscription = consumer._subscription.subscription
    return subscription.assignment if subscription is not None else None


async def refresh_metadata(consumer: AIOKafkaConsumer) -> None:
    """Fetch cluster metadata now (a topic created since the consumer started becomes known)."""
    await consumer._client.force_metadata_update()


# FastStream 0.7


def connection_options(broker: KafkaBroker) -> dict[str, Any]:
    """The keyword arguments FastStream builds the broker's aiokafka producer and admin client from (mutable:
    a change before connect() reaches them)."""
    options: dict[str, Any] = broker._connection_kwargs
    return options


def set_consumer_builder(broker: KafkaBroker, builder: Callable[..., AIOKafkaConsumer]) -> None:
    """Make the connected broker's subscribers build their consumers with ``builder``."""
    broker.config.broker_config.builder = builder


def raw_producer(broker: KafkaBroker) -> AIOKafkaProducer:
    """The connected broker's own aiokafka producer (FastStream keeps it two attributes down)."""
    producer: AIOKafkaProducer = broker._producer._producer.producer  # type: ignore[attr-defined]
    return producer


def swap_producer(broker: KafkaBroker, producer: AIOKafkaProducer) -> None:
    """Make the connected broker publish through ``producer`` (started) from now on."""
    broker._producer._producer.producer = producer  # type: ignore[attr-defined]
