"""Consumer lag from each aiokafka consumer's own state: fetch high-water mark minus the last committed offset.

No ListOffsets or admin calls (they are unreliable on some brokers and cost a round trip per scrape): the high-water
mark comes with every fetch response, and the committed offset is what this process last committed, recorded by
wrapping the consumer's ``commit``. Before this process's first commit on a partition, its consumed position stands
in (it is ahead of the committed offset by at most the poll being handled).
"""

from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker

from shared.compat import assignment_of, group_of
from shared.metrics import LagReading


class CommitTracker:
    """Remembers, per partition, the offsets a consumer committed (its positions at each successful commit)."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.committed: dict[TopicPartition, int] = {}
        original: Callable[..., Any] = consumer.commit

        async def commit(offsets: Any = None) -> None:
            assignment = assignment_of(consumer)
            positions = offsets or (assignment.all_consumed_offsets() if assignment is not None else {})
            await original(offsets)
            for tp, meta in dict(positions).items():
                self.committed[tp] = meta.offset if hasattr(meta, "offset") else int(meta)

        consumer.commit = commit


class BrokerLag:
    """The lag of every started subscriber of one broker, for the ``sluice_consumer_lag`` gauge."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker
        self._trackers: dict[int, CommitTracker] = {}

    def watch(self) -> None:
        """Start tracking commits of consumers started since the last call (call after the broker started)."""
        for subscriber in self._broker.subscribers:
            consumer = getattr(subscriber, "consumer", None)
            if consumer is not None and id(consumer) not in self._trackers:
                self._trackers[id(consumer)] = CommitTracker(consumer)

    def readings(self) -> Iterable[LagReading]:
        self.watch()
        for subscriber in self._broker.subscribers:
            consumer: AIOKafkaConsumer | None = getattr(subscriber, "consumer", None)
            if consumer is None:
                continue
            tracker = self._trackers.get(id(consumer))
            group = group_of(consumer)
            for tp in consumer.assignment():
                highwater = consumer.highwater(tp)
                if highwater is None:
                    continue  # nothing fetched from this partition yet
                committed = tracker.committed.get(tp) if tracker else None
                if committed is None:
                    assignment = assignment_of(consumer)
                    state = assignment.state_value(tp) if assignment is not None else None
                    if state is None or not state.has_valid_position:
                        continue
                    committed = state.position
                yield tp.topic, tp.partition, group, max(highwater - committed, 0)
