"""The limits the pipeline is judged against, measured on the same broker and database in the same run:
raw aiokafka produce + consume of the task messages intake sends, and COPY of the rows the aggregator writes."""

import asyncio
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.jobs import bench_item
from bench.stack import TASK_PARTITIONS
from services.intake.submission.batches import encode_batches
from services.intake.submission.item_json import encode_item
from shared.config import KafkaSettings, PostgresSettings
from shared.kafka import supports_idempotence
from shared.postgres import open_pool
from sluice.contracts.events import Priority

COPY_CHUNK_ROWS = 10_000


@dataclass(frozen=True)
class Ceilings:
    broker_items_per_s: float
    broker_messages: int
    pg_rows_per_s: float
    pg_rows: int


def task_message(batch_size: int) -> bytes:
    """One tasks-topic message exactly as intake would publish it for bench items."""
    batch = next(
        encode_batches(
            job_id=uuid.uuid4(), tenant="default", kind="bench.noop", options={}, priority=Priority.NORMAL,
            items=[encode_item(bench_item(i)) for i in range(batch_size)], batch_size=batch_size,
        )
    )  # fmt: skip
    return batch.payload


async def broker_ceiling(kafka: KafkaSettings, topic: str, items: int, batch_size: int) -> tuple[float, int]:
    """Items/s through the broker: produce (with the services' producer settings) and consume concurrently."""
    connection = kafka.connection
    admin = AIOKafkaAdminClient(**connection.client_options())
    await admin.start()
    try:
        configs = {"max.message.bytes": str(kafka.max_request_bytes)}
        await admin.create_topics([NewTopic(topic, TASK_PARTITIONS, kafka.replication_factor, topic_configs=configs)])
    finally:
        await admin.close()
    body = task_message(batch_size)
    messages = -(-items // batch_size)
    producer_options = connection.client_options(
        acks="all",
        compression_type=None if kafka.compression == "none" else kafka.compression,
        linger_ms=kafka.linger_ms,
        max_request_size=kafka.max_request_bytes,
        max_batch_size=min(kafka.max_request_bytes, 1024 * 1024),
    )
    # As the services produce: idempotent where the broker grants producer ids.
    producer = AIOKafkaProducer(**producer_options, enable_idempotence=await supports_idempotence(producer_options))
    consumer = AIOKafkaConsumer(
        topic,
        **connection.client_options(
            group_id=f"{topic}-group",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=kafka.max_request_bytes,
            enable_auto_commit=False,
        ),
    )
    await producer.start()
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)

        async def produce() -> None:
            pending = []
            for index in range(messages):
                pending.append(await producer.send(topic, body, key=f"ceiling:{index}".encode()))
                if len(pending) >= kafka.publish_window * 8:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)

        started = time.perf_counter()
        producing = asyncio.create_task(produce())
        consumed = 0
        async with asyncio.timeout(600):
            while consumed < messages:
                batches = await consumer.getmany(timeout_ms=200, max_records=1000)
                consumed += sum(len(records) for records in batches.values())
        await producing
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
        await producer.stop()
    return round(messages * batch_size / elapsed, 1), messages


async def postgres_ceiling(database_url: str, rows: int) -> float:
    """Rows/s of COPY into a table shaped like item_results (keys and defaults included), in aggregator-sized
    chunks, one transaction each."""
    pool = await open_pool(PostgresSettings(url=database_url, pool_min=1, pool_max=2))
    template = [bench_item(i) for i in range(COPY_CHUNK_ROWS)]
    columns = ("job_id", "item_index", "status", "input", "output", "error", "error_type", "attempts", "duration_ms")
    try:
        async with pool.acquire() as connection:
            await connection.execute("CREATE TABLE bench_copy_ceiling (LIKE item_results INCLUDING ALL)")
            elapsed = 0.0
            for start in range(0, rows, COPY_CHUNK_ROWS):
                job_id = uuid.uuid4()
                chunk = [
                    (job_id, start + i, "succeeded", item, item, None, None, 1, 0.01, 0)
                    for i, item in enumerate(template[: min(COPY_CHUNK_ROWS, rows - start)])
                ]
                began = time.perf_counter()
                async with connection.transaction():
                    await connection.copy_records_to_table(
                        "bench_copy_ceiling", records=chunk, columns=(*columns, "generation")
                    )
                elapsed += time.perf_counter() - began
            await connection.execute("DROP TABLE bench_copy_ceiling")
    finally:
        await pool.close()
    return round(rows / elapsed, 1)
