"""Pure rules of the processor: decoding a task batch and turning outcomes into results."""

from pydantic import JsonValue

from shared.errors import ItemFailed
from shared.events import BatchProcessed, ItemResult, ItemStatus, TaskBatch, TaskItem, decode, task_batch


def decode_task_batch(raw: bytes | None) -> TaskBatch:
    """Parse one tasks-topic message; raises ValueError with the reason."""
    return decode(task_batch, raw, "TaskBatch")


def succeeded(item: TaskItem, output: JsonValue, duration_ms: float) -> ItemResult:
    return ItemResult(
        index=item.index, status=ItemStatus.SUCCEEDED, input=item.input, output=output, duration_ms=duration_ms
    )


def failed(item: TaskItem, error: BaseException, duration_ms: float) -> ItemResult:
    """A failed result carrying what went wrong; a timeout and a handler's own reason are named plainly."""
    if isinstance(error, ItemFailed):
        message = error.reason
    elif isinstance(error, TimeoutError):
        message = "timed out"
    else:
        message = str(error) or type(error).__name__
    return ItemResult(
        index=item.index,
        status=ItemStatus.FAILED,
        input=item.input,
        error=message[:2000],
        error_type=type(error).__name__,
        duration_ms=duration_ms,
    )


def cancelled(item: TaskItem) -> ItemResult:
    return ItemResult(
        index=item.index, status=ItemStatus.CANCELLED, input=item.input, error="job cancelled", attempts=0
    )


def batch_result(batch: TaskBatch, results: list[ItemResult]) -> BatchProcessed:
    return BatchProcessed(
        tenant=batch.tenant, job_id=batch.job_id, kind=batch.kind, batch_index=batch.batch_index, results=results
    )
