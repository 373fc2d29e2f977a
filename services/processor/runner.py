"""KindRunner: runs the items of task batches through their kind's handler, bounded, timed out and retried."""

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, Tracer
from pydantic import JsonValue

from services.processor.logic import BatchOutcome, Success, cancelled, encode_output, settle_failure
from shared.errors import ItemFailed, SluiceError
from shared.events import TaskBatch, TaskItem, utc_now
from shared.failures import RetryPolicy, item_timeout_s, policy_for
from shared.fingerprints import output_fingerprint
from shared.kinds import ItemHandler, Kind
from shared.kinds.settings import KindSettings
from shared.metrics import SluiceMetrics
from shared.tracing import target_host

log = logging.getLogger(__name__)


class KindNotInstalled(SluiceError, LookupError):
    """A batch names a kind this processor has no handler for (a permanent failure of its items)."""


@dataclass(frozen=True)
class FailurePolicy:
    """The processor's defaults for retries and timeouts; a kind's override and a job's options refine them."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    kind_overrides: Mapping[str, Mapping[str, JsonValue]] = field(default_factory=dict)
    tiers_s: Sequence[int] = (2, 4, 8, 30, 120)
    item_timeout_s: float = 30.0
    kind_timeouts_s: Mapping[str, float] = field(default_factory=dict)


class KindRunner:
    """Owns one started handler per kind; ``max_in_flight`` items run at once across all batches."""

    def __init__(
        self,
        kinds: Mapping[str, Kind],
        max_in_flight: int,
        policy: FailurePolicy,
        *,
        clock: Callable[[], datetime] = utc_now,
        rand: Callable[[], float] = random.random,
        metrics: SluiceMetrics | None = None,
        tracer: Tracer | None = None,
        item_spans: str = "all",
    ) -> None:
        self._kinds = kinds
        self._handlers: dict[str, ItemHandler] = {}
        self._max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        self._policy = policy
        self._clock, self._rand = clock, rand
        self._exit_stack = AsyncExitStack()
        self._metrics = metrics
        self._tracer = tracer
        self._item_spans = item_spans

    async def start(self, settings: KindSettings) -> None:
        for name, kind in self._kinds.items():
            self._handlers[name] = await self._exit_stack.enter_async_context(kind.start(settings))

    async def close(self) -> None:
        await self._exit_stack.aclose()

    async def run(self, batch: TaskBatch, *, is_cancelled: bool = False) -> BatchOutcome:
        """Every item ends in exactly one of: a result (succeeded, failed or cancelled) or a scheduled retry;
        every failed item also gets a dead letter."""
        outcome = BatchOutcome(batch)
        if is_cancelled:
            outcome.results.extend(cancelled(item) for item in batch.items)
            return outcome
        try:
            retry = policy_for(self._policy.retry, self._policy.kind_overrides, batch.kind, batch.options)
        except ValueError as exc:
            return self._fail_all(outcome, ItemFailed(f"options: {exc}"), self._policy.retry)
        handler = self._handlers.get(batch.kind)
        if handler is None:
            return self._fail_all(
                outcome, KindNotInstalled(f"kind {batch.kind!r} is not installed on this processor"), retry
            )
        kind_default_s = self._policy.kind_timeouts_s.get(batch.kind, self._policy.item_timeout_s)
        timeout = item_timeout_s(kind_default_s, batch.options)
        # A few workers drain the batch instead of a task per item: the same concurrency (the slots bound it
        # across batches), without thousands of tasks parked on the semaphore for a big poll.
        pending = iter(batch.items)

        async def drain() -> None:
            for item in pending:
                await self._run_item(outcome, handler, item, retry, timeout)

        await asyncio.gather(*(drain() for _ in range(min(len(batch.items), self._max_in_flight))))
        return outcome

    async def run_all(self, batches: Sequence[TaskBatch], cancelled_jobs: set[object]) -> list[BatchOutcome]:
        return list(await asyncio.gather(*(self.run(b, is_cancelled=b.job_id in cancelled_jobs) for b in batches)))

    def _fail_all(self, outcome: BatchOutcome, error: Exception, retry: RetryPolicy) -> BatchOutcome:
        for item in outcome.batch.items:
            self._settle(outcome, item, error, 0.0, retry)
        return outcome

    async def _run_item(
        self, outcome: BatchOutcome, handler: ItemHandler, item: TaskItem, retry: RetryPolicy, timeout_s: float
    ) -> None:
        async with self._slots:
            if self._tracer is None or self._item_spans != "all":
                await self._call(outcome, handler, item, retry, timeout_s)
                return
            # Errors are recorded by _call (the exception never leaves it: it becomes the item's result).
            with self._tracer.start_as_current_span(
                f"item {outcome.batch.kind}",
                attributes=_item_attributes(outcome.batch.kind, item),
                record_exception=False,
                set_status_on_exception=False,
            ):
                await self._call(outcome, handler, item, retry, timeout_s)

    async def _call(
        self, outcome: BatchOutcome, handler: ItemHandler, item: TaskItem, retry: RetryPolicy, timeout_s: float
    ) -> None:
        started, started_ns = time.perf_counter(), time.time_ns()
        try:
            async with asyncio.timeout(timeout_s):
                output = await handler(item.input, outcome.batch.options)
            encoded = encode_output(output)
            fingerprint = output_fingerprint(self._kinds.get(outcome.batch.kind), output)
            outcome.successes.append(Success(item, encoded, _ms_since(started), fingerprint))
            self._observe(outcome.batch.kind, started, "succeeded")
        except Exception as exc:  # every handler failure (or non-JSON output) is this item's, never the batch's
            self._observe(outcome.batch.kind, started, "error")
            self._trace_failure(outcome.batch.kind, item, exc, started_ns)
            self._settle(outcome, item, exc, _ms_since(started), retry)

    def _trace_failure(self, kind: str, item: TaskItem, exc: Exception, started_ns: int) -> None:
        """Record the error on the item's span; with item_spans=failed, make that span now, with its real start."""
        span = trace.get_current_span()
        made_here = False
        if self._tracer is not None and self._item_spans == "failed":
            span = self._tracer.start_span(
                f"item {kind}", attributes=_item_attributes(kind, item), start_time=started_ns
            )
            made_here = True
        if span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
        if made_here:
            span.end()

    def _observe(self, kind: str, started: float, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.handler_duration.record(time.perf_counter() - started, {"kind": kind, "outcome": outcome})

    def _settle(self, outcome: BatchOutcome, item: TaskItem, error: Exception, ms: float, retry: RetryPolicy) -> None:
        settle_failure(
            outcome,
            item,
            error,
            ms,
            policy=retry,
            tiers=list(self._policy.tiers_s),
            now=self._clock(),
            rand=self._rand,
        )


def _item_attributes(kind: str, item: TaskItem) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {"sluice.kind": kind, "sluice.item_index": item.index}
    attributes["sluice.attempt"] = item.attempt
    if host := target_host(item.input):
        attributes["server.address"] = host
    return attributes


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
