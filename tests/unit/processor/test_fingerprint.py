"""A succeeded item's result carries the fingerprint of its output: the kind's own, else the generic one; a
deterministic kind's results carry none (they are never compared)."""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from uuid import uuid4

import pytest

from services.processor.runner import FailurePolicy, KindRunner
from shared.fingerprints import generic_fingerprint
from shared.kinds import Kind, load_kinds
from shared.kinds.settings import KindSettings
from shared.wire import WireTaskBatch, wire_task_batch
from sluice.contracts.events import BatchProcessed, ItemStatus, TaskBatch, TaskItem


def _batch(kind: str, items: list[object]) -> WireTaskBatch:
    return wire_task_batch(
        TaskBatch(
            tenant="acme", job_id=uuid4(), kind=kind, batch_index=0,
            items=[TaskItem(index=i, input=item) for i, item in enumerate(items)],
        )
    )  # fmt: skip


def _echo_kind(name: str, *, asynchronous: bool) -> Kind:
    async def echo_async(item: object, options: Mapping) -> object:
        return item

    def echo(item: object, options: Mapping) -> object:
        return item

    @asynccontextmanager
    async def start(settings: KindSettings) -> AsyncIterator:
        yield echo_async if asynchronous else echo

    return Kind(name, lambda item: item, start)


async def _results(kind: Kind, items: list[object]) -> list:
    runner = KindRunner({kind.name: kind}, 4, FailurePolicy())
    await runner.start(KindSettings())
    try:
        outcome = await runner.run(_batch(kind.name, items))
    finally:
        await runner.close()
    return BatchProcessed.model_validate_json(outcome.processed_json()).results  # as the aggregator reads it


@pytest.mark.parametrize("asynchronous", [True, False], ids=["async-handler", "sync-handler"])
async def test_succeeded_results_carry_the_fingerprint_of_their_output(asynchronous: bool) -> None:
    results = await _results(_echo_kind("test.echo", asynchronous=asynchronous), [{"b": 2, "a": 1}, "x"])
    assert [r.status for r in results] == [ItemStatus.SUCCEEDED, ItemStatus.SUCCEEDED]
    assert [r.fingerprint for r in results] == [generic_fingerprint({"a": 1, "b": 2}), generic_fingerprint("x")]


async def test_a_deterministic_kinds_results_carry_no_fingerprint() -> None:
    noop = load_kinds()["bench.noop"]
    assert noop.deterministic
    results = await _results(noop, [{"a": 1}, "x"])
    assert [(r.status, r.output, r.fingerprint) for r in results] == [
        (ItemStatus.SUCCEEDED, {"a": 1}, None),
        (ItemStatus.SUCCEEDED, "x", None),
    ]


async def test_a_kind_that_is_not_installed_fails_its_items_without_a_fingerprint() -> None:
    runner = KindRunner({}, 4, FailurePolicy())
    outcome = await runner.run(_batch("nope", [1]))
    assert [(r.status, r.fingerprint) for r in outcome.results] == [(ItemStatus.FAILED, None)]
