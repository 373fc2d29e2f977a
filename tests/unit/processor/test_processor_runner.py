import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from uuid import uuid4

import pytest

from services.processor.runner import KindRunner
from shared.errors import ItemFailed
from shared.events import ItemStatus, TaskBatch, TaskItem
from shared.kinds import Kind
from shared.kinds.settings import KindSettings

DEADLINE_S = 5.0
"""Upper bound on any one runner call here, so a regression hangs no test."""


@dataclass
class Script:
    """A test kind whose handler does what each item says: return, raise, fail, or hang."""

    calls: int = 0
    running: int = 0
    peak: int = 0
    opened: int = 0
    closed: int = 0
    never: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, item, options: Mapping):
        self.calls += 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            for _ in range(3):
                await asyncio.sleep(0)  # a yield point, so concurrent calls interleave
            action = item["do"] if isinstance(item, dict) else "return"
            if action == "raise":
                raise ValueError(f"bad value {item['n']}")
            if action == "raise-silent":
                raise RuntimeError()
            if action == "raise-long":
                raise ValueError("x" * 5000)
            if action == "fail":
                raise ItemFailed("the page said no")
            if action == "hang":
                await self.never.wait()  # never set: the handler hangs until the runner's timeout
            if action == "not-json":
                return datetime(2025, 1, 1)
            return {"echo": item, "options": dict(options)}
        finally:
            self.running -= 1

    def kind(self, name: str = "test.script") -> Kind:
        @asynccontextmanager
        async def start(settings: KindSettings) -> AsyncIterator:
            self.opened += 1
            try:
                yield self.handle
            finally:
                self.closed += 1

        return Kind(name, lambda item: item, start)


@pytest.fixture
def script() -> Script:
    return Script()


@asynccontextmanager
async def running(script: Script, *, max_in_flight: int = 8, item_timeout_s: float = DEADLINE_S):
    runner = KindRunner({"test.script": script.kind()}, max_in_flight=max_in_flight, item_timeout_s=item_timeout_s)
    await runner.start(KindSettings())
    try:
        yield runner
    finally:
        await runner.close()


def _batch(inputs, *, kind="test.script", start=0, batch_index=0, job_id=None, options=None) -> TaskBatch:
    return TaskBatch(
        tenant="acme",
        job_id=job_id or uuid4(),
        kind=kind,
        batch_index=batch_index,
        options=options or {},
        items=[TaskItem(index=start + n, input=value) for n, value in enumerate(inputs)],
    )


async def _run(runner: KindRunner, batch: TaskBatch, **kwargs):
    async with asyncio.timeout(DEADLINE_S):
        return await runner.run(batch, **kwargs)


async def test_every_item_gets_exactly_one_succeeded_result_in_item_order(script):
    batch = _batch(["a", "b", "c", "d"], start=100, batch_index=2, options={"rounds": 3})
    async with running(script) as runner:
        processed = await _run(runner, batch)
    assert [r.index for r in processed.results] == [100, 101, 102, 103]
    assert all(r.status is ItemStatus.SUCCEEDED for r in processed.results)
    assert [r.output for r in processed.results] == [{"echo": v, "options": {"rounds": 3}} for v in "abcd"]
    assert [r.input for r in processed.results] == ["a", "b", "c", "d"]
    assert all(r.error is None and r.error_type is None and r.attempts == 1 for r in processed.results)
    assert all(r.duration_ms >= 0 for r in processed.results)
    assert (processed.job_id, processed.tenant, processed.kind, processed.batch_index) == (
        batch.job_id,
        "acme",
        "test.script",
        2,
    )
    assert script.calls == 4


async def test_a_handler_that_raises_fails_only_its_item_with_the_message_and_type(script):
    batch = _batch(["ok", {"do": "raise", "n": 7}, "ok"])
    async with running(script) as runner:
        processed = await _run(runner, batch)
    statuses = [r.status for r in processed.results]
    assert statuses == [ItemStatus.SUCCEEDED, ItemStatus.FAILED, ItemStatus.SUCCEEDED]
    bad = processed.results[1]
    assert (bad.error, bad.error_type) == ("bad value 7", "ValueError")
    assert bad.input == {"do": "raise", "n": 7}
    assert bad.output is None


async def test_a_deliberate_item_failure_records_the_handlers_reason(script):
    async with running(script) as runner:
        processed = await _run(runner, _batch([{"do": "fail"}]))
    (result,) = processed.results
    assert (result.status, result.error, result.error_type) == (
        ItemStatus.FAILED,
        "the page said no",
        "ItemFailed",
    )


async def test_an_exception_without_a_message_is_named_by_its_type(script):
    async with running(script) as runner:
        processed = await _run(runner, _batch([{"do": "raise-silent"}]))
    (result,) = processed.results
    assert (result.error, result.error_type) == ("RuntimeError", "RuntimeError")


async def test_a_very_long_error_message_is_cut_to_two_thousand_characters(script):
    async with running(script) as runner:
        processed = await _run(runner, _batch([{"do": "raise-long"}]))
    assert processed.results[0].error == "x" * 2000


async def test_a_handler_that_hangs_past_the_item_timeout_fails_that_item_as_timed_out(script):
    async with running(script, item_timeout_s=0.05) as runner:
        processed = await _run(runner, _batch(["ok", {"do": "hang"}, "ok"]))
    statuses = [r.status for r in processed.results]
    assert statuses == [ItemStatus.SUCCEEDED, ItemStatus.FAILED, ItemStatus.SUCCEEDED]
    hung = processed.results[1]
    assert (hung.error, hung.error_type) == ("timed out", "TimeoutError")
    assert script.running == 0  # the hung call was cancelled, not left behind


async def test_failed_and_timed_out_items_give_their_slot_back(script):
    inputs = [{"do": "hang"}, {"do": "raise", "n": 1}, {"do": "fail"}, {"do": "hang"}, "ok"]
    async with running(script, max_in_flight=1, item_timeout_s=0.02) as runner:
        processed = await _run(runner, _batch(inputs))
    assert [r.status for r in processed.results] == [ItemStatus.FAILED] * 4 + [ItemStatus.SUCCEEDED]
    assert script.calls == 5


async def test_a_cancelled_batch_yields_cancelled_results_without_running_anything(script):
    batch = _batch(["a", "b", "c"], start=10)
    async with running(script) as runner:
        processed = await _run(runner, batch, is_cancelled=True)
    assert [r.index for r in processed.results] == [10, 11, 12]
    for result, value in zip(processed.results, "abc", strict=True):
        assert result.status is ItemStatus.CANCELLED
        assert result.attempts == 0
        assert result.error == "job cancelled"
        assert result.input == value
        assert result.output is None
    assert script.calls == 0


async def test_a_batch_of_a_kind_not_installed_fails_every_item_naming_the_kind(script):
    batch = _batch(["a", "b"], kind="test.absent", start=4)
    async with running(script) as runner:
        processed = await _run(runner, batch)
    assert [r.index for r in processed.results] == [4, 5]
    for result in processed.results:
        assert result.status is ItemStatus.FAILED
        assert result.error == "kind 'test.absent' is not installed on this processor"
        assert result.error_type == "KindNotInstalled"
    assert processed.kind == "test.absent"
    assert script.calls == 0


async def test_no_more_than_max_in_flight_handler_calls_run_at_once(script):
    async with running(script, max_in_flight=2) as runner:
        processed = await _run(runner, _batch(list(range(10))))
    assert len(processed.results) == 10
    assert script.calls == 10
    assert script.peak == 2


async def test_the_in_flight_bound_is_shared_across_batches(script):
    batches = [_batch(list(range(4)), batch_index=n) for n in range(3)]
    async with running(script, max_in_flight=2) as runner, asyncio.timeout(DEADLINE_S):
        processed = await runner.run_all(batches, cancelled_jobs=set())
    assert [len(p.results) for p in processed] == [4, 4, 4]
    assert script.peak == 2


async def test_run_all_cancels_only_the_batches_of_cancelled_jobs(script):
    cancelled_job = uuid4()
    batches = [
        _batch(["x"], job_id=cancelled_job),
        _batch(["y"]),
        _batch(["z"], job_id=cancelled_job, batch_index=1),
    ]
    async with running(script) as runner, asyncio.timeout(DEADLINE_S):
        processed = await runner.run_all(batches, cancelled_jobs={cancelled_job})
    assert [p.results[0].status for p in processed] == [
        ItemStatus.CANCELLED,
        ItemStatus.SUCCEEDED,
        ItemStatus.CANCELLED,
    ]
    assert [p.job_id for p in processed] == [b.job_id for b in batches]
    assert script.calls == 1


async def test_closing_the_runner_closes_what_each_kind_opened(script):
    async with running(script) as runner:
        assert (script.opened, script.closed) == (1, 0)
        await _run(runner, _batch(["a"]))
    assert (script.opened, script.closed) == (1, 1)


async def test_a_handler_returning_something_that_is_not_json_fails_only_its_item(script):
    async with running(script) as runner:
        processed = await _run(runner, _batch(["ok", {"do": "not-json"}]))
    assert [r.status for r in processed.results] == [ItemStatus.SUCCEEDED, ItemStatus.FAILED]
