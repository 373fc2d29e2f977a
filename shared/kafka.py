"""Kafka adapters: the broker factory, topic creation and a bounded window of unacknowledged sends."""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypedDict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaConnectionError,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TopicAlreadyExistsError,
    UnknownProducerId,
)
from aiokafka.partitioner import DefaultPartitioner, murmur2
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from shared.compat import (
    FetchRound,
    connection_options,
    fetch_wait_ms,
    raw_producer,
    set_consumer_builder,
    set_fetch_wait_ms,
    swap_producer,
    wrap_fetch_round,
)
from shared.config import KafkaSettings
from shared.errors import BrokerUnavailable
from shared.fetch_wait import IdleFetchWait
from sluice.client.kafka_auth import KafkaAuth, explaining_refusals
from sluice.contracts.headers import REASON_HEADER, SOURCE_TOPIC_HEADER

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
DLQ_PARTITIONS = 3

PRODUCER_STATE_LOST = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)
"""Errors that say the brokers no longer know the producer's id or sequence: only a new producer gets past them."""

IDLE_FETCH_WAIT_MS = 1000
"""How long a fetch of a consumer off the items' path (retry tiers, dead letters, webhooks) waits for data."""
IDLE_POLL_TIMEOUT_MS = 500
"""How long one poll of a batch subscriber off the items' path waits for records. FastStream sleeps as long
again after an empty poll, which bounds the delay this adds; at the items' path's short timeouts, the idle
subscribers kept waking a processor many times a second."""


class IdleAwareConsumer(AIOKafkaConsumer):
    """An AIOKafkaConsumer whose fetches wait longer at the broker while nothing comes (see shared.fetch_wait):
    ``fetch_max_wait_ms`` while records arrive, up to ``idle_fetch_max_wait_ms`` once they have stopped."""

    def __init__(self, *topics: str, idle_fetch_max_wait_ms: int, **options: Any) -> None:
        super().__init__(*topics, **options)
        self._idle_fetch_max_wait_ms = idle_fetch_max_wait_ms
        self.fetch_wait: IdleFetchWait | None = None

    async def start(self) -> None:
        await super().start()
        base_ms = fetch_wait_ms(self)
        self.fetch_wait = wait = IdleFetchWait(base_ms, max(base_ms, self._idle_fetch_max_wait_ms))

        def adapting(fetch: FetchRound) -> FetchRound:
            async def fetch_then_adapt(*args: Any) -> bool:
                got_records = await fetch(*args)
                set_fetch_wait_ms(self, wait.after_fetch(bool(got_records), time.monotonic()))
                return bool(got_records)

            return fetch_then_adapt

        wrap_fetch_round(self, adapting)


class SluiceBroker(KafkaBroker):
    """A KafkaBroker that starts its subscribers concurrently and gives each an IdleAwareConsumer.

    Starting a consumer blocks until its group join completes (seconds), so a service with one group per
    retry tier would otherwise join them one after another and wait for every join in turn to start.
    """

    _renewing: asyncio.Lock
    traced: bool = True
    """False when the service exports no spans: no telemetry middleware, and SendWindow sends straight
    through the producer (FastStream's publish path costs more per message)."""
    idle_fetch_max_wait_ms: int = IDLE_FETCH_WAIT_MS

    async def _connect(self) -> Callable[..., AIOKafkaConsumer]:
        self._renewing = asyncio.Lock()
        options = connection_options(self)
        options["enable_idempotence"] = await supports_idempotence(options)
        plain = await super()._connect()
        assert isinstance(plain, partial), "FastStream 0.7 builds its consumers from a partial"
        builder = partial(
            IdleAwareConsumer, *plain.args, idle_fetch_max_wait_ms=self.idle_fetch_max_wait_ms, **plain.keywords
        )
        set_consumer_builder(self, builder)
        return builder

    async def renew_producer(self, failed: AIOKafkaProducer) -> bool:
        """Replace the producer ``failed`` with a new one (a new producer id), unless that was done already: once
        the brokers lose an idempotent producer's state (a whole-cluster stop), aiokafka's producer fails every
        later batch with OutOfOrderSequenceNumber and never recovers. True if this call replaced it. Sends of the
        old one have failed; their polls are redelivered."""
        async with self._renewing:
            if raw_producer(self) is not failed:
                return False
            fresh = AIOKafkaProducer(**connection_options(self))
            await fresh.start()
            swap_producer(self, fresh)
        log.warning("the brokers lost this producer's state; publishing through a new producer")
        await failed.stop()
        return True

    async def start(self) -> None:
        await self.connect()
        await asyncio.gather(*(subscriber.start() for subscriber in self.subscribers))
        for publisher in self.publishers:
            await publisher.start()
        self.running = True


def spread_batches(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """The producers' partitioner, for sends that name no partition (the dispatcher names one: see
    services/intake/dispatch/placement.py). A task batch's key, ``<job_id>:<batch_index>``, picks a partition from the
    job (its hash) plus the batch's index, so a job's batches redriven from the dead letters go round the
    partitions (hashing whole keys left some partitions much fuller than others). Any other key is hashed as
    Kafka's default partitioner does."""
    if key is not None:
        job, _, index = key.rpartition(b":")
        if job and index.isdigit():
            start = murmur2(job) & 0x7FFFFFFF
            return all_partitions[(start + int(index)) % len(all_partitions)]
    return DefaultPartitioner()(key, all_partitions, available)


def make_broker(settings: KafkaSettings, *, client_id: str, tracer_provider: TracerProvider) -> KafkaBroker:
    """A FastStream broker whose producer waits for all in-sync replicas (acks=all), spreads each job's task
    batches over the partitions and, unless the provider samples nothing (tracing off), traces every hop."""
    traced = tracer_provider.sampler is not ALWAYS_OFF
    broker = SluiceBroker(
        # As a list: FastStream wraps a string whole, so "a:9092,b:9092" would reach aiokafka as one host name.
        [server.strip() for server in settings.bootstrap_servers.split(",") if server.strip()],
        client_id=client_id,
        acks="all",
        partitioner=spread_batches,
        compression_type=None if settings.compression == "none" else settings.compression,
        linger_ms=settings.linger_ms,
        max_request_size=settings.max_request_bytes,
        max_batch_size=min(settings.max_request_bytes, 1024 * 1024),
        request_timeout_ms=settings.request_timeout_ms,
        security=broker_security(settings.auth),
        middlewares=(KafkaTelemetryMiddleware(tracer_provider=tracer_provider),) if traced else (),
        logger=logging.getLogger(f"sluice.{client_id}.kafka"),
        log_level=logging.DEBUG,  # FastStream's per-message "Received"/"Processed" lines
    )
    broker.traced = traced
    broker.idle_fetch_max_wait_ms = settings.idle_fetch_max_wait_ms
    return broker


def polled_records(broker: KafkaBroker) -> Sequence[ConsumerRecord]:
    """The records of the poll a batch subscriber's handler is running for, from the broker's context. Taken as a
    ``KafkaMessage`` parameter instead, FastStream resolves them in a worker thread on every poll."""
    return broker.context.get_local("message").raw_message


async def undecoded(message: object) -> None:
    """Subscriber decoder for handlers that take the raw records and decode them in bulk themselves: skips
    FastStream's per-message JSON parse, whose result they would throw away (a profiled hot-path cost)."""
    return None


class GroupOptions(TypedDict):
    """The consumer timing ``group_options`` gives every subscriber (keyword arguments of ``broker.subscriber``)."""

    session_timeout_ms: int
    heartbeat_interval_ms: int
    fetch_max_wait_ms: int


def group_options(settings: KafkaSettings, *, on_items_path: bool = False) -> GroupOptions:
    """Consumer timing for every subscriber: how soon a dead member's partitions move on, and how long a fetch
    waits at the broker for data. Consumers on the items' path (tasks, results) wait ``fetch_max_wait_ms``:
    a broker that answers a waiting fetch only when the wait ends adds that much latency to each hop; the
    others wait longer, since every fetch costs the broker work even when there is nothing to fetch."""
    wait_ms = settings.fetch_max_wait_ms if on_items_path else max(settings.fetch_max_wait_ms, IDLE_FETCH_WAIT_MS)
    return {
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": max(settings.session_timeout_ms // 3, 1000),
        "fetch_max_wait_ms": wait_ms,
    }


def broker_security(auth: KafkaAuth) -> BaseSecurity | None:
    """FastStream's form of the Kafka security settings (None for PLAINTEXT)."""
    context = auth.ssl_context()
    if auth.sasl_mechanism is None:
        return BaseSecurity(ssl_context=context) if context else None
    security = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    password = auth.sasl_password.get_secret_value() if auth.sasl_password else ""
    return security[auth.sasl_mechanism](
        username=auth.sasl_username or "", password=password, ssl_context=context, use_ssl=auth.uses_tls
    )


async def supports_idempotence(options: Mapping[str, Any]) -> bool:
    """Whether the broker grants producer ids (InitProducerId), tried with a producer of these options: where it
    does, producers are idempotent, so a retried send can't write a message twice."""
    producer = AIOKafkaProducer(**{**options, "enable_idempotence": True})
    try:
        await producer.start()
    except (KafkaConnectionError, OSError):
        raise  # not an answer about the feature: the caller's retry decides
    except KafkaError as exc:
        log.info("the broker grants no producer ids (%s): producers are not idempotent", type(exc).__name__)
        return False
    finally:
        await producer.stop()
    return True


def topic_specs(settings: KafkaSettings) -> list[NewTopic]:
    """Every Sluice topic with its partition count, retention and replication (see the docs' topic table).
    ``max.message.bytes`` follows the producers' request size, which is above Apache Kafka's 1 MiB default."""
    topics = settings.topics
    week = str(7 * DAY_MS)
    common = {"max.message.bytes": str(settings.max_request_bytes)}
    if settings.min_insync_replicas is not None:
        common["min.insync.replicas"] = str(settings.min_insync_replicas)

    def spec(name: str, partitions: int, retention_ms: str) -> NewTopic:
        configs = {**common, "retention.ms": retention_ms}
        return NewTopic(name, partitions, settings.replication_factor, topic_configs=configs)

    return [
        spec(topics.requests, settings.request_partitions, week),
        spec(topics.tasks, settings.task_partitions, week),
        spec(topics.tasks_high, settings.task_partitions, week),
        spec(topics.results, settings.result_partitions, week),
        spec(topics.job_events, settings.job_event_partitions, week),
        spec(topics.rejected, settings.rejected_partitions, str(14 * DAY_MS)),
        *(spec(topics.retry(tier), settings.task_partitions, str(DAY_MS)) for tier in retry_tiers(settings)),
        spec(topics.tasks_dlq, DLQ_PARTITIONS, str(30 * DAY_MS)),
        spec(topics.results_dlq, DLQ_PARTITIONS, str(30 * DAY_MS)),
        spec(topics.triggers, settings.request_partitions, week),
    ]


def retry_tiers(settings: KafkaSettings) -> list[int]:
    """The retry topics' delays, in seconds, ascending and without repeats."""
    return sorted(set(settings.retry_tiers_s))


async def ensure_topics(settings: KafkaSettings) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are. KafkaRefused (raised at
    once, not retried) when the broker turns our credentials or certificate away."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=10_000, **settings.auth.client_options()
    )
    with explaining_refusals(settings.bootstrap_servers, settings.auth):
        await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in topic_specs(settings) if spec.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another replica created them between our list and create
            log.info("created topics %s", [spec.name for spec in missing])
    finally:
        await admin.close()


def error_headers(reason: str, source_topic: str) -> dict[str, str]:
    return {REASON_HEADER: reason[:1000], SOURCE_TOPIC_HEADER: source_topic}


class SendWindow:
    """Sends with at most ``size`` unacknowledged messages; ``flush`` waits for every acknowledgement.

    A failed acknowledgement, or none within ``stall_timeout_s``, surfaces as BrokerUnavailable from
    the next ``send`` or ``flush``.
    """

    def __init__(self, broker: KafkaBroker, size: int, stall_timeout_s: float = 30.0) -> None:
        self._broker = broker
        self._direct = not getattr(broker, "traced", True)
        self._size = size
        self._stall_timeout_s = stall_timeout_s
        self._pending: deque[tuple[asyncio.Future[object], AIOKafkaProducer]] = deque()
        self.sent = 0

    async def send(
        self,
        body: bytes,
        topic: str,
        *,
        key: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        partition: int | None = None,
    ) -> None:
        """Send to ``partition``, or (None) where the producer's partitioner puts the key."""
        while len(self._pending) >= self._size:
            await self._settle(*self._pending.popleft())
        producer = raw_producer(self._broker)
        try:
            async with asyncio.timeout(self._stall_timeout_s):
                future = await self._publish(body, topic, key, headers or {}, partition)
        except KafkaError as exc:
            await self._renew_if_lost(exc, producer)
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:
            raise BrokerUnavailable(f"the broker took no message for {self._stall_timeout_s}s") from exc
        self._pending.append((future, producer))
        self.sent += 1

    async def flush(self) -> None:
        while self._pending:
            await self._settle(*self._pending.popleft())

    async def _publish(
        self, body: bytes, topic: str, key: bytes | None, headers: Mapping[str, str], partition: int | None
    ) -> "asyncio.Future[object]":
        if self._direct:
            encoded = [(name, value.encode()) for name, value in headers.items()]
            return await raw_producer(self._broker).send(topic, body, key=key, headers=encoded, partition=partition)
        return await self._broker.publish(
            body, topic, key=key, headers=dict(headers), partition=partition, no_confirm=True
        )

    async def partitions(self, topic: str) -> set[int]:
        """The topic's partitions as the producer's metadata knows them (fetched first if it does not yet)."""
        try:
            async with asyncio.timeout(self._stall_timeout_s):
                return set(await raw_producer(self._broker).partitions_for(topic))
        except KafkaError as exc:
            raise BrokerUnavailable(f"no partitions known for {topic}: {type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:
            raise BrokerUnavailable(f"no metadata for {topic} within {self._stall_timeout_s}s") from exc

    async def _renew_if_lost(self, exc: KafkaError, producer: AIOKafkaProducer) -> None:
        if isinstance(exc, PRODUCER_STATE_LOST) and isinstance(self._broker, SluiceBroker):
            await self._broker.renew_producer(producer)

    def abandon(self) -> None:
        """Forget unacknowledged sends after a failure (their outcome no longer changes the answer)."""
        for future, _ in self._pending:
            future.add_done_callback(_consume_exception)
        self._pending.clear()

    async def _settle(self, future: "asyncio.Future[object]", producer: AIOKafkaProducer) -> None:
        try:
            async with asyncio.timeout(self._stall_timeout_s):
                await asyncio.shield(future)
        except KafkaError as exc:
            await self._renew_if_lost(exc, producer)
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:
            future.add_done_callback(_consume_exception)
            raise BrokerUnavailable(f"no acknowledgement from the broker within {self._stall_timeout_s}s") from exc


def _consume_exception(future: "asyncio.Future[object]") -> None:
    if not future.cancelled():
        future.exception()
