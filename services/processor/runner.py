"""KindRunner: runs the items of task batches through their kind's handler, bounded and timed out."""

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack

from pydantic import JsonValue

from services.processor.logic import batch_result, cancelled, failed, succeeded
from shared.events import BatchProcessed, ItemResult, TaskBatch, TaskItem
from shared.kinds import ItemHandler, Kind
from shared.kinds.settings import KindSettings

log = logging.getLogger(__name__)


class KindNotInstalled(LookupError):
    pass


class KindRunner:
    """Owns one started handler per kind; ``max_in_flight`` items run at once across all batches."""

    def __init__(self, kinds: Mapping[str, Kind], max_in_flight: int, item_timeout_s: float) -> None:
        self._kinds = kinds
        self._handlers: dict[str, ItemHandler] = {}
        self._slots = asyncio.Semaphore(max_in_flight)
        self._timeout = item_timeout_s
        self._exit_stack = AsyncExitStack()

    async def start(self, settings: KindSettings) -> None:
        for name, kind in self._kinds.items():
            self._handlers[name] = await self._exit_stack.enter_async_context(kind.start(settings))

    async def close(self) -> None:
        await self._exit_stack.aclose()

    async def run(self, batch: TaskBatch, *, is_cancelled: bool = False) -> BatchProcessed:
        """Every item of the batch gets exactly one result: succeeded, failed or cancelled."""
        if is_cancelled:
            return batch_result(batch, [cancelled(item) for item in batch.items])
        handler = self._handlers.get(batch.kind)
        if handler is None:
            error = KindNotInstalled(f"kind {batch.kind!r} is not installed on this processor")
            return batch_result(batch, [failed(item, error, 0.0) for item in batch.items])
        results = await asyncio.gather(*(self._run_item(handler, item, batch.options) for item in batch.items))
        return batch_result(batch, list(results))

    async def run_all(self, batches: Sequence[TaskBatch], cancelled_jobs: set[object]) -> list[BatchProcessed]:
        return list(await asyncio.gather(*(self.run(b, is_cancelled=b.job_id in cancelled_jobs) for b in batches)))

    async def _run_item(self, handler: ItemHandler, item: TaskItem, options: Mapping[str, JsonValue]) -> ItemResult:
        async with self._slots:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._timeout):
                    output = await handler(item.input, options)
                return succeeded(item, output, _ms_since(started))
            except Exception as exc:  # every handler failure (or non-JSON output) fails this item, never the batch
                return failed(item, exc, _ms_since(started))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
