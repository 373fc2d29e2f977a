import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from services.processor.runner import FailurePolicy, KindRunner
from shared.errors import ItemFailed
from shared.failures import RetryPolicy
from shared.kinds import Kind
from shared.kinds.settings import KindSettings
from shared.wire import WireTaskBatch, wire_task_batch
from sluice.contracts.events import BatchProcessed, ItemStatus, TaskBatch, TaskItem

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
            if action == "fail-transient":
                raise ItemFailed("try later", retryable=True, retry_after_s=item.get("retry_after_s"))
            if action == "refuse-connection":
                raise ConnectionRefusedError("refused")
            if action == "hang":
                await self.never.wait()  # never set: the handler hangs until the runner's timeout
            if action == "dwell":
                await asyncio.sleep(item["ms"] / 1000)  # the handler's own work takes at least this long
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
async def running(
    script: Script, *, max_in_flight: int = 8, item_timeout_s: float = DEADLINE_S, max_attempts: int = 1, **policy
):
    failure_policy = FailurePolicy(
        retry=RetryPolicy(max_attempts=max_attempts), tiers_s=(2, 4, 8), item_timeout_s=item_timeout_s, **policy
    )
    runner = KindRunner({"test.script": script.kind()}, max_in_flight, failure_policy, rand=lambda: 1.0)
    await runner.start(KindSettings())
    try:
        yield runner
    finally:
        await runner.close()


def _batch(inputs, *, kind="test.script", start=0, batch_index=0, job_id=None, options=None) -> WireTaskBatch:
    """A batch as the processor reads it off the tasks topic."""
    return wire_task_batch(
        TaskBatch(
            tenant="acme",
            job_id=job_id or uuid4(),
            kind=kind,
            batch_index=batch_index,
            options=options or {},
            items=[TaskItem(index=start + n, input=value) for n, value in enumerate(inputs)],
        )
    )


async def _outcome(runner: KindRunner, batch: WireTaskBatch, **kwargs):
    async with asyncio.timeout(DEADLINE_S):
        return await runner.run(batch, **kwargs)


async def _run(runner: KindRunner, batch: WireTaskBatch, **kwargs):
    """The results message of a batch whose every item ends (no retries), as the aggregator reads it."""
    outcome = await _outcome(runner, batch, **kwargs)
    assert outcome.retries == []
    wire = BatchProcessed.model_validate_json(outcome.processed_json())
    assert wire.results == outcome.processed.results
    return wire


async def test_every_item_gets_exactly_one_succeeded_result_in_item_order(script):
    batch = _batch(["a", "b", "c", "d"], start=100, batch_index=2, options={"rounds": 3})
    async with running(script) as runner:
        processed = await _run(runner, batch)
    assert [r.index for r in processed.results] == [100, 101, 102, 103]
    assert all(r.status is ItemStatus.SUCCEEDED for r in processed.results)
    assert [r.output for r in processed.results] == [{"echo": v, "options": {"rounds": 3}} for v in "abcd"]
    assert [r.input for r in processed.results] == ["a", "b", "c", "d"]
    assert all(r.error is None and r.error_type is None and r.attempts == 1 for r in processed.results)
    assert (processed.job_id, processed.tenant, processed.kind, processed.batch_index) == (
        batch.job_id,
        "acme",
        "test.script",
        2,
    )
    assert script.calls == 4


async def test_each_result_records_at_least_the_time_its_handler_call_took(script):
    async with running(script) as runner:
        processed = await _run(runner, _batch([{"do": "dwell", "ms": 30}, {"do": "dwell", "ms": 60}]))
    durations = [r.duration_ms for r in processed.results]
    assert durations[0] >= 30 and durations[1] >= 60, durations  # the call is inside what the runner times


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
    assert statuses == [ItemStatus.SUCCEEDED, ItemStatus.TIMED_OUT, ItemStatus.SUCCEEDED]
    hung = processed.results[1]
    assert (hung.error, hung.error_type) == ("timed out", "TimeoutError")
    assert script.running == 0  # the hung call was cancelled, not left behind


async def test_failed_and_timed_out_items_give_their_slot_back(script):
    inputs = [{"do": "hang"}, {"do": "raise", "n": 1}, {"do": "fail"}, {"do": "hang"}, "ok"]
    async with running(script, max_in_flight=1, item_timeout_s=0.02) as runner:
        processed = await _run(runner, _batch(inputs))
    timed_out, failed, succeeded = ItemStatus.TIMED_OUT, ItemStatus.FAILED, ItemStatus.SUCCEEDED
    assert [r.status for r in processed.results] == [timed_out, failed, failed, timed_out, succeeded]
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
        outcomes = await runner.run_all(batches, cancelled_jobs=set())
    assert [len(o.all_results) for o in outcomes] == [4, 4, 4]
    assert script.peak == 2


async def test_run_all_cancels_only_the_batches_of_cancelled_jobs(script):
    cancelled_job = uuid4()
    batches = [
        _batch(["x"], job_id=cancelled_job),
        _batch(["y"]),
        _batch(["z"], job_id=cancelled_job, batch_index=1),
    ]
    async with running(script) as runner, asyncio.timeout(DEADLINE_S):
        outcomes = await runner.run_all(batches, cancelled_jobs={cancelled_job})
    processed = [o.processed for o in outcomes]
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


async def test_a_transient_failure_with_tries_left_schedules_a_retry_and_gives_no_result_yet(script):
    batch = _batch(["ok", {"do": "fail-transient"}], start=5)
    async with running(script, max_attempts=3) as runner:
        outcome = await _outcome(runner, batch)
    assert [r.index for r in outcome.all_results] == [5]
    assert outcome.dead_letters == []
    (retry,) = outcome.retries
    assert (retry.item.index, retry.item.attempt, retry.delay_s) == (6, 2, 2)
    assert retry.item.first_failed_at is not None
    ((tier, retry_batch),) = outcome.retry_batches()
    assert (tier, [i.index for i in retry_batch.items], retry_batch.job_id) == (2, [6], batch.job_id)


async def test_the_target_retry_after_lengthens_the_wait_to_the_next_tier_that_covers_it(script):
    async with running(script, max_attempts=3) as runner:
        outcome = await _outcome(runner, _batch([{"do": "fail-transient", "retry_after_s": 5}]))
    assert [r.delay_s for r in outcome.retries] == [8]


async def test_a_batch_whose_every_item_waits_for_a_retry_publishes_no_results_message(script):
    async with running(script, max_attempts=2) as runner:
        outcome = await _outcome(runner, _batch([{"do": "refuse-connection"}, {"do": "fail-transient"}]))
    assert outcome.processed_json() is None  # what the processor would publish: nothing
    assert [r.item.attempt for r in outcome.retries] == [2, 2]


async def test_the_last_attempt_fails_the_item_with_its_attempt_count_and_a_dead_letter_of_the_original(script):
    first_failed_at = datetime(2026, 1, 1, tzinfo=UTC)
    item = TaskItem(index=3, input={"do": "fail-transient"}, attempt=3, first_failed_at=first_failed_at, generation=1)
    batch = wire_task_batch(TaskBatch(tenant="acme", job_id=uuid4(), kind="test.script", batch_index=0, items=[item]))
    async with running(script, max_attempts=3) as runner:
        outcome = await _outcome(runner, batch)
    assert outcome.retries == []
    (result,) = outcome.processed.results
    assert (result.status, result.error, result.attempts, result.generation) == (ItemStatus.FAILED, "try later", 3, 1)
    (letter,) = outcome.dead_letters
    assert letter.item == TaskItem(index=3, input={"do": "fail-transient"}, generation=1)
    assert letter.first_failure_at == first_failed_at
    assert letter.last_failure_at > first_failed_at
    assert outcome.dead_letter_batch(letter).items == [letter.item]


async def test_a_permanent_failure_fails_at_once_and_is_dead_lettered_even_with_tries_left(script):
    async with running(script, max_attempts=4) as runner:
        outcome = await _outcome(runner, _batch([{"do": "raise", "n": 1}]))
    assert outcome.retries == []
    assert [(r.status, r.attempts) for r in outcome.results] == [(ItemStatus.FAILED, 1)]
    (letter,) = outcome.dead_letters
    assert letter.first_failure_at == letter.last_failure_at


async def test_a_retried_item_that_succeeds_records_the_attempt_it_took(script):
    item = TaskItem(index=0, input="ok", attempt=2, first_failed_at=datetime(2026, 1, 1, tzinfo=UTC))
    batch = wire_task_batch(TaskBatch(tenant="acme", job_id=uuid4(), kind="test.script", batch_index=0, items=[item]))
    async with running(script, max_attempts=4) as runner:
        outcome = await _outcome(runner, batch)
    assert [(r.status, r.attempts) for r in outcome.processed.results] == [(ItemStatus.SUCCEEDED, 2)]
    assert outcome.dead_letters == []


async def test_a_hung_item_is_retried_as_a_transient_failure(script):
    async with running(script, item_timeout_s=0.05, max_attempts=2) as runner:
        outcome = await _outcome(runner, _batch([{"do": "hang"}]))
    assert [(r.item.attempt, r.delay_s) for r in outcome.retries] == [(2, 2)]


async def test_a_jobs_timeout_option_overrides_the_processors_item_timeout(script):
    async with running(script, item_timeout_s=DEADLINE_S) as runner:
        outcome = await _outcome(runner, _batch([{"do": "hang"}], options={"timeout_s": 0.05}))
    assert [(r.error, r.error_type) for r in outcome.results] == [("timed out", "TimeoutError")]


async def test_a_jobs_retry_option_overrides_the_kinds_override_which_overrides_the_default(script):
    overrides = {"test.script": {"max_attempts": 1}}
    async with running(script, max_attempts=4, kind_overrides=overrides) as runner:
        by_kind = await _outcome(runner, _batch([{"do": "fail-transient"}]))
        by_job = await _outcome(runner, _batch([{"do": "fail-transient"}], options={"retry": {"max_attempts": 2}}))
    assert (len(by_kind.retries), len(by_kind.dead_letters)) == (0, 1)
    assert (len(by_job.retries), len(by_job.dead_letters)) == (1, 0)


async def test_invalid_retry_options_fail_every_item_permanently_naming_the_option(script):
    async with running(script, max_attempts=4) as runner:
        outcome = await _outcome(runner, _batch(["a", "b"], options={"retry": {"max_attempts": 0}}))
    assert outcome.retries == []
    assert len(outcome.dead_letters) == 2
    assert all(r.error.startswith("options: retry.max_attempts") for r in outcome.results)
    assert script.calls == 0


async def test_items_of_a_kind_not_installed_are_dead_lettered(script):
    async with running(script, max_attempts=4) as runner:
        outcome = await _outcome(runner, _batch(["a"], kind="test.absent"))
    assert [letter.result.error_type for letter in outcome.dead_letters] == ["KindNotInstalled"]


@pytest.mark.parametrize(
    ("overrides", "tiers"), [('{"bench.noop": {"max_attempts": 0}}', [2]), ("{}", []), ("not json", [2])]
)
def test_the_processor_refuses_to_start_with_bad_retry_settings(overrides, tiers):
    from services.processor.app import build_app
    from services.processor.settings import ProcessorSettings
    from shared.config import KafkaSettings
    from shared.failures import InvalidRetryOverrides

    settings = ProcessorSettings(retry_overrides=overrides, kafka=KafkaSettings(retry_tiers_s=tiers))
    with pytest.raises(InvalidRetryOverrides):
        build_app(settings)


async def test_a_kinds_item_timeout_replaces_the_processors_and_a_jobs_option_still_wins(script):
    async with running(script, item_timeout_s=DEADLINE_S, kind_timeouts_s={"test.script": 0.05}) as runner:
        by_kind = await _outcome(runner, _batch([{"do": "hang"}]))
    async with running(script, item_timeout_s=0.05, kind_timeouts_s={"test.script": DEADLINE_S}) as runner:
        by_job = await _outcome(runner, _batch([{"do": "hang"}], options={"timeout_s": 0.05}))
    assert [r.status for r in by_kind.results] == [ItemStatus.TIMED_OUT]
    assert [r.status for r in by_job.results] == [ItemStatus.TIMED_OUT]


def _sync_kind(calls: list[object]) -> Kind:
    """A kind whose handler is a plain function: returns, raises or returns non-JSON as each item says."""

    def handle(item, options: Mapping):
        calls.append(item)
        if isinstance(item, dict) and item.get("do") == "raise":
            raise ValueError(f"bad value {item['n']}")
        if isinstance(item, dict) and item.get("do") == "not-json":
            return datetime(2025, 1, 1)
        return {"echo": item, "options": dict(options)}

    @asynccontextmanager
    async def start(settings: KindSettings) -> AsyncIterator:
        yield handle

    return Kind("test.sync", lambda item: item, start)


@asynccontextmanager
async def running_sync(calls: list[object]):
    policy = FailurePolicy(retry=RetryPolicy(max_attempts=1), tiers_s=(2, 4, 8), item_timeout_s=DEADLINE_S)
    runner = KindRunner({"test.sync": _sync_kind(calls)}, 8, policy, rand=lambda: 1.0)
    await runner.start(KindSettings())
    try:
        yield runner
    finally:
        await runner.close()


async def test_a_plain_function_handler_gives_every_item_one_result_in_item_order():
    calls: list[object] = []
    async with running_sync(calls) as runner:
        wire = await _run(runner, _batch(["a", {"k": 1}, 3], kind="test.sync", start=10, options={"o": 1}))
    assert calls == ["a", {"k": 1}, 3]
    assert [(r.index, r.status, r.output) for r in wire.results] == [
        (10, ItemStatus.SUCCEEDED, {"echo": "a", "options": {"o": 1}}),
        (11, ItemStatus.SUCCEEDED, {"echo": {"k": 1}, "options": {"o": 1}}),
        (12, ItemStatus.SUCCEEDED, {"echo": 3, "options": {"o": 1}}),
    ]


async def test_a_plain_function_handler_that_raises_or_returns_non_json_fails_only_that_item():
    calls: list[object] = []
    items = [{"do": "raise", "n": 7}, "fine", {"do": "not-json"}]
    async with running_sync(calls) as runner:
        wire = await _run(runner, _batch(items, kind="test.sync"))
    assert [(r.status, r.error_type) for r in wire.results] == [
        (ItemStatus.FAILED, "ValueError"),
        (ItemStatus.SUCCEEDED, None),
        (ItemStatus.FAILED, "TypeError"),
    ]
    assert wire.results[0].error == "bad value 7"


async def test_a_long_run_of_plain_function_calls_lets_the_event_loop_in_between():
    """Heartbeats and acknowledgements must not wait for a whole batch of synchronous work."""
    calls: list[object] = []
    ticks: list[int] = []

    async def ticker() -> None:
        while True:
            ticks.append(len(calls))
            await asyncio.sleep(0)

    slow = Kind("test.sync", lambda item: item, _slow_start(calls))
    policy = FailurePolicy(retry=RetryPolicy(max_attempts=1), item_timeout_s=DEADLINE_S)
    runner = KindRunner({"test.sync": slow}, 8, policy)
    await runner.start(KindSettings())
    task = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0)
        await _outcome(runner, _batch(list(range(40)), kind="test.sync"))
    finally:
        task.cancel()
        await runner.close()
    assert any(0 < seen < 40 for seen in ticks)  # the ticker ran while the batch was part done


def _slow_start(calls: list[object]):
    def handle(item, options: Mapping):
        calls.append(item)
        deadline = time.perf_counter() + 0.001  # 1 ms of work per item, 40 ms in all
        while time.perf_counter() < deadline:
            pass
        return item

    @asynccontextmanager
    async def start(settings: KindSettings) -> AsyncIterator:
        yield handle

    return start


async def _calls_of_two_slow_batches(*, same_turn: bool) -> tuple[list[object], list[int]]:
    """Run two 20-item batches of a 1-ms-per-item plain function concurrently, with one turn or one each; returns
    the items in call order and how many calls had been made when each batch was done."""
    calls: list[object] = []
    slow = Kind("test.sync", lambda item: item, _slow_start(calls))
    policy = FailurePolicy(retry=RetryPolicy(max_attempts=1), item_timeout_s=DEADLINE_S)
    runner = KindRunner({"test.sync": slow}, 8, policy)
    await runner.start(KindSettings())
    shared = asyncio.Lock()
    calls_when_done: list[int] = []

    async def run(batch: WireTaskBatch) -> None:
        await _outcome(runner, batch, turn=shared if same_turn else asyncio.Lock())
        calls_when_done.append(len(calls))

    try:
        first, second = _batch(list(range(20)), kind="test.sync"), _batch(list(range(20, 40)), kind="test.sync")
        await asyncio.gather(run(first), run(second))
    finally:
        await runner.close()
    return calls, calls_when_done


async def test_batches_of_one_poll_run_in_turn_so_the_first_is_done_before_the_next_starts():
    """A CPU-bound job's first results must not wait for the whole poll's work."""
    calls, calls_when_done = await _calls_of_two_slow_batches(same_turn=True)
    assert calls == list(range(40))  # not interleaved, though each batch lets the loop in (5 ms slices)
    assert calls_when_done == [20, 40]


async def test_batches_of_different_polls_share_the_processor_instead_of_queueing():
    """A high-priority poll's batch must not wait behind a whole poll of CPU-bound work on the normal topic."""
    calls, calls_when_done = await _calls_of_two_slow_batches(same_turn=False)
    assert sorted(calls) == list(range(40)) and calls != list(range(40))  # interleaved
    assert calls_when_done[0] > 20
