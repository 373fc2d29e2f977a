"""Pure rules of the processor: turning each item's outcome into a result, a scheduled retry or a dead letter,
and the results message of a batch."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter

import orjson
from msgspec import Raw
from pydantic import JsonValue

from shared.errors import ItemFailed
from shared.failures import Disposition, RetryPolicy, classify, retry_delay_s
from shared.wire import (
    WireBatchProcessed,
    WireItem,
    WireResult,
    WireTaskBatch,
    contract_batch,
    contract_result,
    encode,
    wire_result,
)
from sluice.contracts.events import BatchProcessed, ItemResult, ItemStatus, TaskBatch, TaskItem


def succeeded(item: TaskItem, output: JsonValue, duration_ms: float, fingerprint: str | None = None) -> ItemResult:
    return ItemResult(
        index=item.index,
        status=ItemStatus.SUCCEEDED,
        input=item.input,
        output=output,
        attempts=item.attempt,
        duration_ms=duration_ms,
        generation=item.generation,
        fingerprint=fingerprint,
    )


_JSON_ONLY = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def encode_output(output: object) -> bytes:
    """A handler's output as JSON, encoded once; raises TypeError (a failed item) unless it is made of JSON
    types: dicts with string keys, lists, strings, numbers, booleans and None (a UUID becomes its string)."""
    return orjson.dumps(output, option=_JSON_ONLY)


def success(item: WireItem, output: bytes, duration_ms: float, fingerprint: str | None) -> WireResult:
    """A succeeded item's result as the results message carries it: its input as it came, its output as
    encoded (encode_output). The hot path builds nothing else per item."""
    return WireResult(
        index=item.index, status=ItemStatus.SUCCEEDED, input=item.input, output=Raw(output), attempts=item.attempt,
        duration_ms=duration_ms, generation=item.generation, fingerprint=fingerprint,
    )  # fmt: skip


def error_message(error: BaseException) -> str:
    """What went wrong, plainly: a handler's own reason, "timed out", or the message (else the type)."""
    if isinstance(error, ItemFailed):
        return error.reason
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__


def failed(item: TaskItem, error: BaseException, duration_ms: float) -> ItemResult:
    """A failed result carrying what went wrong and how many tries it took; timed_out if the item's own
    timeout ended its last try."""
    return ItemResult(
        index=item.index,
        status=ItemStatus.TIMED_OUT if isinstance(error, TimeoutError) else ItemStatus.FAILED,
        input=item.input,
        error=error_message(error)[:2000],
        error_type=type(error).__name__,
        attempts=item.attempt,
        duration_ms=duration_ms,
        generation=item.generation,
    )


def cancelled(item: TaskItem) -> ItemResult:
    return ItemResult(
        index=item.index,
        status=ItemStatus.CANCELLED,
        input=item.input,
        error="job cancelled",
        attempts=0,
        generation=item.generation,
    )


def cancelled_wire(item: WireItem) -> WireResult:
    """``cancelled`` for an item as it came off the wire (a cancelled job's batches are skipped in bulk)."""
    return WireResult(
        index=item.index, status=ItemStatus.CANCELLED, input=item.input, error="job cancelled", attempts=0,
        generation=item.generation,
    )  # fmt: skip


def batch_result(batch: TaskBatch | WireTaskBatch, results: list[ItemResult]) -> BatchProcessed:
    return BatchProcessed(
        tenant=batch.tenant, job_id=batch.job_id, kind=batch.kind, batch_index=batch.batch_index, results=results
    )


@dataclass(frozen=True)
class RetryScheduled:
    """The item's next attempt, to wait ``delay_s`` in that tier's retry topic."""

    item: TaskItem
    delay_s: int


@dataclass(frozen=True)
class DeadLetter:
    """An item that ended failed: the item as first submitted, and when and why it failed."""

    item: TaskItem
    result: ItemResult
    first_failure_at: datetime
    last_failure_at: datetime


@dataclass
class BatchOutcome:
    """What running one batch decided: final results, retries to schedule, dead letters to write."""

    batch: WireTaskBatch
    results: list[WireResult] = field(default_factory=list)
    """Results other than the successes: failed, timed out, cancelled."""
    successes: list[WireResult] = field(default_factory=list)
    retries: list[RetryScheduled] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    @property
    def all_results(self) -> list[ItemResult]:
        """Every final result as the contract's model, in index order (for tests and the slow paths)."""
        return sorted(map(contract_result, [*self.results, *self.successes]), key=attrgetter("index"))

    @property
    def processed(self) -> BatchProcessed | None:
        """The results message as the contract's model, or None when every item is waiting for a retry."""
        ordered = self.all_results
        return batch_result(self.batch, ordered) if ordered else None

    def processed_json(self) -> bytes | None:
        """The results message (a BatchProcessed) as JSON, encoded in one pass with each success's input as
        it came and its output as encoded; None when every item is waiting for a retry."""
        if not self.results and not self.successes:
            return None
        rows = [*self.results, *self.successes]
        rows.sort(key=attrgetter("index"))  # concurrent items finish in any order
        batch = self.batch
        return encode(
            WireBatchProcessed(
                type="batch.processed",
                tenant=batch.tenant,
                job_id=batch.job_id,
                kind=batch.kind,
                batch_index=batch.batch_index,
                results=rows,
            )
        )

    def retry_batches(self) -> list[tuple[int, TaskBatch]]:
        """One TaskBatch per delay tier, carrying the items due for another attempt."""
        by_tier: dict[int, list[TaskItem]] = {}
        for retry in self.retries:
            by_tier.setdefault(retry.delay_s, []).append(retry.item)
        return [(tier, contract_batch(self.batch, items)) for tier, items in sorted(by_tier.items())]

    def dead_letter_batch(self, letter: DeadLetter) -> TaskBatch:
        """The one-item TaskBatch a dead letter carries (redrive republishes it to the tasks topic)."""
        return contract_batch(self.batch, [letter.item])


def settle_failure(
    outcome: BatchOutcome,
    item: TaskItem,
    error: BaseException,
    duration_ms: float,
    *,
    policy: RetryPolicy,
    tiers: list[int],
    now: datetime,
    rand: Callable[[], float],
) -> None:
    """A transient failure with tries left becomes a retry (no result yet); any other failure becomes a
    failed result plus a dead letter."""
    first_failure_at = item.first_failed_at or now
    if classify(error) is Disposition.RETRY and policy.allows_another_attempt(item.attempt):
        retry_after = error.retry_after_s if isinstance(error, ItemFailed) else None
        delay = retry_delay_s(item.attempt, policy.base_delay_s, retry_after, tiers, rand=rand)
        next_try = item.model_copy(update={"attempt": item.attempt + 1, "first_failed_at": first_failure_at})
        outcome.retries.append(RetryScheduled(next_try, delay))
        return
    result = failed(item, error, duration_ms)
    original = item.model_copy(update={"attempt": 1, "first_failed_at": None})
    outcome.results.append(wire_result(result))
    outcome.dead_letters.append(DeadLetter(original, result, first_failure_at, now))
