"""The aggregator's unit of work: write a poll of results, then publish what the write decided."""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import ConsumerRecord

from services.aggregator.changes import ChangeStep, change_events
from services.aggregator.dead_letters import (
    ATTEMPTS_HEADER,
    ERROR_TYPE_HEADER,
    JOB_ID_HEADER,
    LAST_FAILURE_HEADER,
    TENANT_HEADER,
)
from services.aggregator.logic import (
    ProgressThrottle,
    backoff_delay,
    decode_results_message,
    lifecycle_event,
    progress_event,
)
from shared.config import TopicNames
from shared.errors import DatabaseUnavailable
from shared.events import BatchProcessed, CancelJob, utc_now
from shared.kafka import SendWindow, error_headers
from shared.postgres import CONNECTION_ERRORS
from shared.stores.results import JobState, ResultStore, WriteOutcome

log = logging.getLogger(__name__)


@dataclass
class ResultSink:
    store: ResultStore
    window: SendWindow
    topics: TopicNames
    throttle: ProgressThrottle
    write_attempts: int = 1
    changes: ChangeStep | None = None
    """Change detection, run in the write's transaction (None: results are not compared)."""

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """Process one poll of the results topic.

        1. decode; undecodable messages go to the results dead-letter topic with the reason;
        2. write results and counters in one transaction (ResultStore.record);
        3. publish lifecycle and due progress events, and results of unknown jobs to the dead-letter topic;
           wait for the broker to acknowledge them;
        4. mark the lifecycle events announced;
        5. return: only then are the offsets committed. A crash before that redelivers the poll,
           which step 2 counts as duplicates, and the sweep re-announces whatever step 4 missed.
        """
        batches: list[BatchProcessed] = []
        cancels: list[CancelJob] = []
        raw_by_job: dict[object, list[ConsumerRecord]] = {}
        for record in records:
            try:
                message = decode_results_message(record.value)
            except ValueError as exc:
                await self._reject(record, str(exc), "UndecodableMessage")
                continue
            (batches if isinstance(message, BatchProcessed) else cancels).append(message)
            raw_by_job.setdefault(message.job_id, []).append(record)
        if not batches and not cancels:
            await self.window.flush()
            return
        outcome = await self._record_with_retry(batches, cancels)
        for job_id in outcome.unknown_jobs:
            for record in raw_by_job.get(job_id, []):
                reason = f"unknown job {job_id}: no job row exists, results not written"
                tenant = next((m.tenant for m in [*batches, *cancels] if m.job_id == job_id), None)
                await self._reject(record, reason, "UnknownJob", job_id=str(job_id), tenant=tenant)
        for changed in change_events(outcome.also):
            await self.window.send(
                changed.model_dump_json().encode(), self.topics.job_events, key=str(changed.job_id).encode()
            )
        await self._announce(outcome.finished)
        for state in self.throttle.due(outcome.jobs, time.monotonic()):
            await self._publish(progress_event(state).model_dump_json().encode(), state)
        await self.window.flush()
        if outcome.finished:
            await self.store.mark_announced([state.job_id for state in outcome.finished])
        if outcome.duplicates:
            log.info("skipped %d redelivered results", outcome.duplicates)

    async def _record_with_retry(self, batches: list[BatchProcessed], cancels: list[CancelJob]) -> WriteOutcome:
        """Retry a write the database could not take, backing off; after the last attempt, raise (redelivery)."""
        for attempt in range(1, self.write_attempts + 1):
            try:
                return await self.store.record(batches, cancels, also=self.changes)
            except CONNECTION_ERRORS as exc:
                if attempt == self.write_attempts:
                    raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
                delay = backoff_delay(attempt)
                log.warning("database write failed (attempt %d), retrying in %.1fs: %s", attempt, delay, exc)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def sweep_unannounced(self) -> int:
        """Publish lifecycle events that a crash or a failed publish left unannounced."""
        pending = await self.store.unannounced()
        if pending:
            await self._announce(pending)
            await self.window.flush()
            await self.store.mark_announced([state.job_id for state in pending])
        return len(pending)

    async def _announce(self, states: Sequence[JobState]) -> None:
        for state in states:
            await self._publish(lifecycle_event(state).model_dump_json().encode(), state)

    async def _publish(self, body: bytes, state: JobState) -> None:
        await self.window.send(body, self.topics.job_events, key=str(state.job_id).encode())

    async def _reject(
        self, record: ConsumerRecord, reason: str, error_type: str, job_id: str | None = None, tenant: str | None = None
    ) -> None:
        """Set a message aside on the results dead-letter topic, where the aggregator also indexes it."""
        log.warning("dead-lettered a message from %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)
        headers = error_headers(reason, record.topic) | {
            ERROR_TYPE_HEADER: error_type,
            LAST_FAILURE_HEADER: utc_now().isoformat(),
            ATTEMPTS_HEADER: "1",
        }
        if job_id is not None and tenant is not None:
            headers |= {JOB_ID_HEADER: job_id, TENANT_HEADER: tenant}
        await self.window.send(record.value or b"", self.topics.results_dlq, key=record.key, headers=headers)
