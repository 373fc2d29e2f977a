"""Kafka side of the SDK: ask for jobs with JobRequested events, and consume results or job events typed.

Topic names follow the deployment's prefix (SLUICE_KAFKA_TOPIC_PREFIX, ``sluice`` by default).
"""

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar
from uuid import UUID, uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import JsonValue, TypeAdapter

from sluice.contracts.events import JobRequested, Priority, decode, job_event, results_topic_message
from sluice.contracts.topics import TopicNames

log = logging.getLogger(__name__)

E = TypeVar("E")
Handler = Callable[[E], Awaitable[None]]
OnUndecodable = Callable[[ConsumerRecord, ValueError], Awaitable[None]]


class JobRequestPublisher:
    """Publishes JobRequested to ``<prefix>.job-requests`` and waits for the broker's acknowledgement (acks=all).

    Intake takes the job from there; an invalid request lands on ``<prefix>.rejected`` with the reason.
    """

    def __init__(self, bootstrap_servers: str, *, topic_prefix: str = "sluice", client_id: str = "sluice-sdk") -> None:
        self.topic = TopicNames.for_prefix(topic_prefix).requests
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", client_id=client_id)

    async def __aenter__(self) -> "JobRequestPublisher":
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def request(
        self,
        kind: str,
        items: Iterable[JsonValue],
        *,
        tenant: str = "default",
        options: dict[str, JsonValue] | None = None,
        priority: Priority | str = Priority.NORMAL,
        callback_url: str | None = None,
        job_id: UUID | None = None,
    ) -> JobRequested:
        """Build, validate and publish one request; returns it (its ``job_id`` is the job's id in intake)."""
        event = JobRequested(
            tenant=tenant, job_id=job_id or uuid4(), kind=kind, items=list(items), options=options or {},
            priority=Priority(priority), callback_url=callback_url,
        )  # fmt: skip
        await self._producer.send_and_wait(self.topic, event.model_dump_json().encode(), key=str(event.job_id).encode())
        return event


class EventConsumer(Generic[E]):
    """Runs ``handler`` on every event of one topic in a consumer group; commits an offset only after the
    handler returned for that message (at-least-once: a crash redelivers, so make the handler idempotent).

    An undecodable message goes to ``on_undecodable`` (default: raise, which stops the consumer without
    committing it); return from it to skip the message.
    """

    def __init__(
        self, bootstrap_servers: str, topic: str, group_id: str, adapter: TypeAdapter[Any], what: str, **kafka: Any
    ) -> None:
        self.topic, self._adapter, self._what = topic, adapter, what
        self._consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap_servers, group_id=group_id, enable_auto_commit=False,
            auto_offset_reset=kafka.pop("auto_offset_reset", "earliest"), **kafka,
        )  # fmt: skip
        self.handled = 0

    async def __aenter__(self) -> "EventConsumer[E]":
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def run(
        self, handler: Handler[E], *, on_undecodable: OnUndecodable | None = None, max_events: int | None = None
    ) -> int:
        """Consume until cancelled (or ``max_events`` handled); returns how many events were handled."""
        while max_events is None or self.handled < max_events:
            fetched = await self._consumer.getmany(timeout_ms=500, max_records=100)
            for tp, records in fetched.items():
                for record in records:
                    if max_events is not None and self.handled >= max_events:
                        # Fetched but not handled: read them again next time (the offset was not committed).
                        self._consumer.seek(tp, record.offset)
                        break
                    try:
                        await self._handle(tp, record, handler, on_undecodable)
                    except BaseException:
                        self._consumer.seek(tp, record.offset)  # a later run() starts with this message again
                        raise
        return self.handled

    async def _handle(
        self, tp: TopicPartition, record: ConsumerRecord, handler: Handler[E], on_undecodable: OnUndecodable | None
    ) -> None:
        try:
            event = decode(self._adapter, record.value, self._what)
        except ValueError as exc:
            if on_undecodable is None:
                raise
            await on_undecodable(record, exc)
        else:
            await handler(event)
            self.handled += 1
        await self._consumer.commit({TopicPartition(tp.topic, tp.partition): record.offset + 1})


def job_events_consumer(
    bootstrap_servers: str, group_id: str, *, topic_prefix: str = "sluice", **kafka: Any
) -> EventConsumer[Any]:
    """Consumer of ``<prefix>.job-events``: JobProgressed, JobCompleted, JobFailed, JobCancelled."""
    topic = TopicNames.for_prefix(topic_prefix).job_events
    return EventConsumer(bootstrap_servers, topic, group_id, job_event, "job event", **kafka)


def results_consumer(
    bootstrap_servers: str, group_id: str, *, topic_prefix: str = "sluice", **kafka: Any
) -> EventConsumer[Any]:
    """Consumer of ``<prefix>.results``: BatchProcessed (item results) and CancelJob."""
    topic = TopicNames.for_prefix(topic_prefix).results
    return EventConsumer(bootstrap_servers, topic, group_id, results_topic_message, "results-topic message", **kafka)
