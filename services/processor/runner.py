"""KindRunner: runs the items of task batches through their kind's handler, bounded, timed out and retried."""

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeGuard, cast

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, Tracer
from pydantic import JsonValue

from services.processor.logic import BatchOutcome, cancelled_wire, encode_output, settle_failure, success
from shared.errors import ItemFailed
from shared.failures import RetryPolicy, item_timeout_s, policy_for
from shared.fingerprints import output_fingerprint
from shared.kinds import ItemHandler, Kind, SyncItemHandler
from shared.kinds.settings import KindSettings
from shared.metrics import SluiceMetrics
from shared.tracing import target_host
from shared.wire import WireItem, WireTaskBatch, contract_item, value_of
from sluice.contracts.events import utc_now
from sluice.errors import SluiceError

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


SYNC_SLICE_S = 0.005
"""A run of synchronous handler calls gives the event loop a turn at least this often (heartbeats, acks)."""


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
        self._sync: dict[str, SyncItemHandler] = {}
        self._fingerprints: dict[str, Callable[[object], str] | None] = {}
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
            handler = await self._exit_stack.enter_async_context(kind.start(settings))
            self._fingerprints[name] = None if kind.deterministic else _fingerprint_function(kind)
            if _is_plain_function(handler):
                self._sync[name] = handler
            else:
                # Kind.start yields an ItemHandler or a SyncItemHandler, and a plain def is the sync one.
                self._handlers[name] = cast(ItemHandler, handler)

    async def close(self) -> None:
        await self._exit_stack.aclose()

    async def run(
        self, batch: WireTaskBatch, *, is_cancelled: bool = False, turn: asyncio.Lock | None = None
    ) -> BatchOutcome:
        """Every item ends in exactly one of: a result (succeeded, failed or cancelled) or a scheduled retry;
        every failed item also gets a dead letter. Batches of a plain-function kind given the same ``turn`` (one
        poll's) run one after another (see ``_run_sync``)."""
        outcome = BatchOutcome(batch)
        if is_cancelled:
            outcome.results.extend(cancelled_wire(item) for item in batch.items)
            return outcome
        try:
            retry = policy_for(self._policy.retry, self._policy.kind_overrides, batch.kind, batch.options)
        except ValueError as exc:
            return self._fail_all(outcome, ItemFailed(f"options: {exc}"), self._policy.retry)
        if (sync_handler := self._sync.get(batch.kind)) is not None:
            async with turn or asyncio.Lock():
                await self._run_sync(outcome, sync_handler, retry)
            return outcome
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

    async def run_all(self, batches: Sequence[WireTaskBatch], cancelled_jobs: set[object]) -> list[BatchOutcome]:
        turn = asyncio.Lock()
        runs = (self.run(b, is_cancelled=b.job_id in cancelled_jobs, turn=turn) for b in batches)
        return list(await asyncio.gather(*runs))

    async def _run_sync(self, outcome: BatchOutcome, handler: SyncItemHandler, retry: RetryPolicy) -> None:
        """A synchronous handler's items, one after another on the event loop with no timer each: such a call
        cannot be interrupted, so the item timeout does not apply to it. Every SYNC_SLICE_S the loop gets a
        turn. Failures take the same path as the asynchronous ones.

        The batches of one poll take turns (``run``'s ``turn``): interleaved, every batch of a poll finished only
        when the poll's CPU work was all done, so the first results of a CPU-bound job waited a whole poll; in
        turn, each batch is published as it ends. Other polls' batches (the
        high-priority topic's, a retry tier's) still interleave with them instead of queueing behind them."""
        batch = outcome.batch
        kind, options = batch.kind, batch.options
        fingerprint_of = self._fingerprinter(kind)
        spans = self._tracer is not None and self._item_spans == "all"
        durations: list[float] = []
        successes = outcome.successes
        clock = time.perf_counter
        slice_ends = clock() + SYNC_SLICE_S
        for item in batch.items:
            started = clock()
            try:
                if spans:
                    output = self._traced_sync_call(handler, item, kind, options)
                else:
                    output = handler(value_of(item.input), options)
                encoded = encode_output(output)
                fingerprint = fingerprint_of(output) if fingerprint_of is not None else None
            except Exception as exc:  # the item's failure, never the batch's
                elapsed = clock() - started
                self._observe(kind, started, "error")
                if not spans:  # a traced call recorded the error on its own span
                    self._trace_failure(kind, item, exc, time.time_ns() - int(elapsed * 1e9))
                self._settle(outcome, item, exc, round(elapsed * 1000, 3), retry)
            else:
                elapsed = clock() - started
                durations.append(elapsed)
                successes.append(success(item, encoded, round(elapsed * 1000, 3), fingerprint))
            if started > slice_ends:
                await asyncio.sleep(0)
                slice_ends = clock() + SYNC_SLICE_S
        if self._metrics is not None and durations:
            self._metrics.handler_duration.record_each(durations, {"kind": kind, "outcome": "succeeded"})

    def _traced_sync_call(self, handler: SyncItemHandler, item: WireItem, kind: str, options: Mapping) -> object:
        assert self._tracer is not None
        value = value_of(item.input)
        with self._tracer.start_as_current_span(
            f"item {kind}",
            attributes=_item_attributes(kind, item),
            record_exception=False,
            set_status_on_exception=False,
        ):
            try:
                return handler(value, options)
            except Exception as exc:
                trace.get_current_span().record_exception(exc)
                trace.get_current_span().set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
                raise

    def _fingerprinter(self, kind: str) -> Callable[[object], str] | None:
        """How a kind's outputs are fingerprinted for change detection; None for a deterministic kind."""
        return self._fingerprints.get(kind)

    def _fail_all(self, outcome: BatchOutcome, error: Exception, retry: RetryPolicy) -> BatchOutcome:
        for item in outcome.batch.items:
            self._settle(outcome, item, error, 0.0, retry)
        return outcome

    async def _run_item(
        self, outcome: BatchOutcome, handler: ItemHandler, item: WireItem, retry: RetryPolicy, timeout_s: float
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
        self, outcome: BatchOutcome, handler: ItemHandler, item: WireItem, retry: RetryPolicy, timeout_s: float
    ) -> None:
        started, started_ns = time.perf_counter(), time.time_ns()
        kind = outcome.batch.kind
        try:
            async with asyncio.timeout(timeout_s):
                output = await handler(value_of(item.input), outcome.batch.options)
            encoded = encode_output(output)
            fingerprint_of = self._fingerprinter(kind)
            fingerprint = fingerprint_of(output) if fingerprint_of is not None else None
            outcome.successes.append(success(item, encoded, _ms_since(started), fingerprint))
            self._observe(kind, started, "succeeded")
        except Exception as exc:  # every handler failure (or non-JSON output) is this item's, never the batch's
            self._observe(kind, started, "error")
            self._trace_failure(kind, item, exc, started_ns)
            self._settle(outcome, item, exc, _ms_since(started), retry)

    def _trace_failure(self, kind: str, item: WireItem, exc: Exception, started_ns: int) -> None:
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

    def _settle(self, outcome: BatchOutcome, item: WireItem, error: Exception, ms: float, retry: RetryPolicy) -> None:
        settle_failure(
            outcome,
            contract_item(item),
            error,
            ms,
            policy=retry,
            tiers=list(self._policy.tiers_s),
            now=self._clock(),
            rand=self._rand,
        )


def _item_attributes(kind: str, item: WireItem) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {"sluice.kind": kind, "sluice.item_index": item.index}
    attributes["sluice.attempt"] = item.attempt
    if host := target_host(value_of(item.input)):
        attributes["server.address"] = host
    return attributes


def _fingerprint_function(kind: Kind) -> Callable[[object], str]:
    return lambda output: output_fingerprint(kind, output)  # type: ignore[arg-type]


def _is_plain_function(handler: object) -> TypeGuard[SyncItemHandler]:
    """A handler written as a plain ``def`` (not ``async def``, not an object with an async ``__call__``)."""
    if inspect.iscoroutinefunction(handler):
        return False
    return inspect.isfunction(handler) or inspect.ismethod(handler) or inspect.isbuiltin(handler)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
