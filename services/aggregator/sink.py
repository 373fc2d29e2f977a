"""The aggregator's unit of work: write a poll of results, then publish what the write decided."""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord
from opentelemetry import trace
from opentelemetry.trace import SpanContext, SpanKind, Tracer

from services.aggregator.changes import ChangeStep, change_events
from services.aggregator.dead_letters import (
    ATTEMPTS_HEADER,
    ERROR_TYPE_HEADER,
    JOB_ID_HEADER,
    LAST_FAILURE_HEADER,
    TENANT_HEADER,
)
from services.aggregator.job_links import JobSpanLinks
from services.aggregator.logic import (
    ProgressThrottle,
    backoff_delay,
    lifecycle_event,
    progress_event,
)
from shared.errors import DatabaseUnavailable
from shared.kafka import SendWindow, error_headers
from shared.metrics import SluiceMetrics
from shared.postgres import CONNECTION_ERRORS
from shared.records import JobState
from shared.stores.results import ResultStore, WriteOutcome
from shared.tracing import links_to, parent_context, record_headers, span_context_of
from shared.wire import WireBatchProcessed, decode_results_message
from sluice.contracts.events import CancelJob, utc_now
from sluice.contracts.headers import JOB_TRACE_HEADER, SUBMITTED_AT_HEADER
from sluice.contracts.topics import TopicNames

MAX_WRITE_LINKS = 64
"""The write span of a poll links at most this many of the poll's result messages (the first ones)."""

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
    tracer: Tracer = field(default_factory=lambda: trace.get_tracer("sluice.aggregator"))
    traced: bool = True
    """False when no span is exported: no span per result message (each reads its message's trace context)."""
    metrics: SluiceMetrics | None = None
    job_links: JobSpanLinks = field(default_factory=JobSpanLinks)

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
        batches: list[WireBatchProcessed] = []
        cancels: list[CancelJob] = []
        raw_by_job: dict[object, list[ConsumerRecord]] = {}
        message_spans: list[SpanContext] = []
        job_roots: dict[object, str] = {}
        submitted_ms: dict[int, int] = {}  # id(batch) → when its job was submitted (epoch ms)
        for record in records:
            try:
                message = decode_results_message(record.value)
            except ValueError as exc:
                await self._reject(record, str(exc), "UndecodableMessage")
                continue
            if isinstance(message, WireBatchProcessed):
                batches.append(message)
            else:
                cancels.append(message)
            raw_by_job.setdefault(message.job_id, []).append(record)
            headers = record_headers(record.headers)
            if root := headers.get(JOB_TRACE_HEADER):
                job_roots[message.job_id] = root
            if (submitted := headers.get(SUBMITTED_AT_HEADER, "")).isdigit():
                submitted_ms[id(message)] = int(submitted)
            if self.traced:
                message_spans.append(self._message_span(message, headers))
        if not batches and not cancels:
            await self.window.flush()
            return
        # One transaction for the whole poll: its span links the poll's messages (a fan-in no parent fits).
        with self.tracer.start_as_current_span(
            "postgres record results",
            kind=SpanKind.CLIENT,
            links=links_to(message_spans, limit=MAX_WRITE_LINKS),
            attributes={"db.system": "postgresql", "db.operation.name": "record", "sluice.messages": len(records)},
        ):
            outcome = await self._record_with_retry(batches, cancels)
        self._observe_write(batches, outcome, submitted_ms)
        for state in outcome.finished:
            self._completion_span(state, job_roots.get(state.job_id))
        for job_id in outcome.unknown_jobs:
            messages: list[WireBatchProcessed | CancelJob] = [*batches, *cancels]
            for record in raw_by_job.get(job_id, []):
                reason = f"unknown job {job_id}: no job row exists, results not written"
                tenant = next((m.tenant for m in messages if m.job_id == job_id), None)
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

    def _message_span(self, message: WireBatchProcessed | CancelJob, headers: dict[str, str]) -> SpanContext:
        """A span for one result message, a child of the processor's publish span; remembered for the job's
        completion span."""
        attributes: dict[str, str | int] = {"sluice.job_id": str(message.job_id), "sluice.type": message.type}
        if isinstance(message, WireBatchProcessed):
            attributes |= {"sluice.kind": message.kind, "sluice.batch_index": message.batch_index}
        root = span_context_of(headers.get(JOB_TRACE_HEADER))
        span = self.tracer.start_span(
            f"aggregate {message.type}",
            context=parent_context(headers),
            kind=SpanKind.CONSUMER,
            links=links_to([root], limit=1),
            attributes=attributes,
        )
        span.end()
        context = span.get_span_context()
        if context.is_valid:
            self.job_links.remember(message.job_id, context)
        return context

    def _completion_span(self, state: JobState, root: str | None) -> None:
        """The job's end: a child of its root span, linking the batches recorded for it (job_links.py bounds)."""
        parent = parent_context({"traceparent": root}) if root else None
        span = self.tracer.start_span(
            f"job {state.status.value}",
            context=parent,
            links=links_to(self.job_links.take(state.job_id), limit=64),
            attributes={"sluice.job_id": str(state.job_id), "sluice.tenant": state.tenant,
                        "sluice.status": state.status.value, "sluice.items": state.counts.total},
        )  # fmt: skip
        span.end()
        if self.metrics is not None:
            self.metrics.jobs_finished.add(1, {"status": state.status.value})

    def _observe_write(
        self, batches: list[WireBatchProcessed], outcome: WriteOutcome, submitted_ms: dict[int, int]
    ) -> None:
        if self.metrics is None:
            return
        now_ms = time.time() * 1000
        for batch in batches:
            if batch.job_id in outcome.unknown_jobs or (submitted := submitted_ms.get(id(batch))) is None:
                continue
            latency_s = max(now_ms - submitted, 0) / 1000
            self.metrics.e2e_latency.record_many(latency_s, len(batch.results), {"kind": batch.kind})

    async def _record_with_retry(self, batches: list[WireBatchProcessed], cancels: list[CancelJob]) -> WriteOutcome:
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

    async def sweep_unannounced(self, finished_s_ago: float = 0.0) -> int:
        """Publish lifecycle events that a crash or a failed publish left unannounced (those of jobs finished
        less than ``finished_s_ago`` seconds ago are left to the poll announcing them)."""
        pending = await self.store.unannounced(finished_s_ago=finished_s_ago)
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
