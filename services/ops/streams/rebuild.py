"""Rebuilding the PostgreSQL read model (jobs and item_results) from the retained tasks and results topics."""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from services.ops.streams.errors import OpsError
from services.ops.streams.reader import read_records
from services.ops.streams.selection import Selection
from services.ops.streams.sketch import JobSketch, add_batch
from shared.stores.jobs import AlreadyExists, JobStore
from shared.stores.results import ResultStore
from shared.wire import WireBatchProcessed, decode_results_message
from sluice.client.kafka_auth import KafkaConnection
from sluice.contracts.events import CancelJob, decode, task_batch
from sluice.contracts.topics import TopicNames

log = logging.getLogger(__name__)

WRITE_CHUNK = 200
"""Result messages written per transaction, as the aggregator does."""


@dataclass
class RebuildOutcome:
    jobs_created: int = 0
    jobs_reset: int = 0
    results_restored: int = 0
    result_messages: int = 0
    undecodable: int = 0
    results_of_unknown_jobs: int = 0
    unknown_jobs: set[UUID] = field(default_factory=set)


async def rebuild(kafka: KafkaConnection, topics: TopicNames, pool: asyncpg.Pool) -> RebuildOutcome:
    """1. refuse unless item_results is empty; 2. write a ``jobs`` row for every job on the tasks topic (a row
    that survived gets its counters reset); 3. write every result on the results topic through the
    aggregator's ResultStore, so counters and statuses come out as the aggregator computed them;
    4. mark the jobs that finished as announced (their events went out the first time)."""
    if await pool.fetchval("SELECT to_regclass('item_results')") is None:
        raise OpsError(
            "table item_results is missing although its migration is recorded: rebuild into a new database, "
            "or drop the schema whole (DROP SCHEMA public CASCADE; CREATE SCHEMA public) and run rebuild again"
        )
    present = await pool.fetchval("SELECT count(*) FROM item_results")
    if present:
        raise OpsError(f"item_results already holds {present} rows: rebuild needs an empty read model")
    outcome = RebuildOutcome()
    sketches: dict[UUID, JobSketch] = {}
    async for record in read_records(kafka, topics.tasks, Selection()):
        try:
            add_batch(sketches, decode(task_batch, record.value, "TaskBatch"), record.timestamp_ms)
        except ValueError:
            outcome.undecodable += 1
    await _write_jobs(pool, sketches.values(), outcome)

    store = ResultStore(pool)
    finished: set[UUID] = set()
    batches: list[WireBatchProcessed] = []
    cancels: list[CancelJob] = []

    async def flush() -> None:
        written = await store.record(batches, cancels)
        outcome.results_restored += written.inserted
        outcome.unknown_jobs |= written.unknown_jobs
        outcome.results_of_unknown_jobs += sum(len(b.results) for b in batches if b.job_id in written.unknown_jobs)
        finished.update(state.job_id for state in written.finished)
        batches.clear()
        cancels.clear()

    async for record in read_records(kafka, topics.results, Selection()):
        try:
            message = decode_results_message(record.value)
        except ValueError:
            outcome.undecodable += 1
            continue
        outcome.result_messages += 1
        if isinstance(message, CancelJob):
            # Written after the results before it, as the aggregator saw them: a job that completed
            # before a late cancellation stays completed.
            if batches:
                await flush()
            cancels.append(message)
            await flush()
            continue
        batches.append(message)
        if len(batches) >= WRITE_CHUNK:
            await flush()
    if batches or cancels:
        await flush()
    await store.mark_announced(sorted(finished))
    return outcome


async def _write_jobs(pool: asyncpg.Pool, sketches: Iterable[JobSketch], outcome: RebuildOutcome) -> None:
    jobs = JobStore(pool)
    for sketch in sketches:
        created = await jobs.create(sketch.new_job())
        if isinstance(created, AlreadyExists):
            outcome.jobs_reset += 1
            await pool.execute(
                """UPDATE jobs SET succeeded = 0, failed = 0, cancelled = 0, timed_out = 0, status = 'queued',
                                   started_at = NULL, finished_at = NULL, error = NULL
                   WHERE job_id = $1""",
                sketch.job_id,
            )
        else:
            outcome.jobs_created += 1
            await pool.execute(
                """UPDATE jobs SET created_at = to_timestamp($2::float8 / 1000), accepted_at = now()
                   WHERE job_id = $1""",
                sketch.job_id, sketch.first_seen_ms,
            )  # fmt: skip
