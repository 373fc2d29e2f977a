"""Where the dispatcher sends a job's batches, read back from the real broker: spread evenly over the task
partitions, and then to the partitions whose batches are done, so the processor that keeps up is sent more."""

from collections import Counter
from uuid import UUID

import asyncpg
from aiokafka import ConsumerRecord

from shared.config import FlowSettings, KafkaSettings
from shared.stores.backlog import return_credits
from tests.support.dispatching import admit, leading_dispatcher
from tests.support.kafka import read_until

PARTITIONS = 4
IN_FLIGHT = 8


async def test_batches_go_to_the_partitions_that_drained_first(db, kafka_address, topic_prefix):
    kafka = KafkaSettings(bootstrap_servers=kafka_address, topic_prefix=topic_prefix, task_partitions=PARTITIONS)
    async with leading_dispatcher(db, kafka, FlowSettings(), {"max_in_flight_batches": IN_FLIGHT}):
        job_id = await admit(db, batches=3 * IN_FLIGHT)
        first = await _read(kafka, IN_FLIGHT)
        # The processor owning partitions 0 and 1 is done with its batches; the one owning 2 and 3 is not.
        done = [record for record in first if record.partition in (0, 1)]
        await _record_results(db, job_id, done)
        after = await _read(kafka, IN_FLIGHT + len(done))
        released = await db.fetch(
            "SELECT batch_index, released_partition FROM task_backlog WHERE job_id = $1 AND released_at IS NOT NULL",
            job_id,
        )

    assert Counter(record.partition for record in first) == dict.fromkeys(range(PARTITIONS), IN_FLIGHT // PARTITIONS)
    sent_first = {_index(record) for record in first}
    refills = [record for record in after if _index(record) not in sent_first]
    assert Counter(record.partition for record in refills) == {0: len(done) // 2, 1: len(done) // 2}
    in_flight = [record for record in first if record not in done] + refills
    assert {row["batch_index"]: row["released_partition"] for row in released} == {
        _index(record): record.partition for record in in_flight
    }, "the backlog keeps the partition each batch in flight went to"


async def _read(kafka: KafkaSettings, count: int) -> list[ConsumerRecord]:
    records = await read_until(kafka.bootstrap_servers, kafka.topics.tasks, lambda got: len(got) >= count)
    assert len(records) == count, "no more batches than the plan lets be in flight"
    return records


async def _record_results(db: asyncpg.Pool, job_id: UUID, records: list[ConsumerRecord]) -> None:
    async with db.acquire() as connection, connection.transaction():  # as the aggregator does
        await return_credits(connection, [(job_id, _index(record)) for record in records])


def _index(record: ConsumerRecord) -> int:
    return int(record.key.decode().rpartition(":")[2])
