"""A succeeded item's result carries the fingerprint of its output: the kind's own, else the generic one."""

from uuid import uuid4

from services.processor.runner import FailurePolicy, KindRunner
from shared.events import BatchProcessed, ItemStatus, TaskBatch, TaskItem
from shared.fingerprints import generic_fingerprint
from shared.kinds import load_kinds
from shared.kinds.settings import KindSettings


def _batch(kind: str, items: list[object]) -> TaskBatch:
    return TaskBatch(
        tenant="acme", job_id=uuid4(), kind=kind, batch_index=0,
        items=[TaskItem(index=i, input=item) for i, item in enumerate(items)],
    )  # fmt: skip


async def test_succeeded_results_carry_the_fingerprint_of_their_output_and_failed_ones_none() -> None:
    kinds = load_kinds()
    runner = KindRunner({"bench.noop": kinds["bench.noop"]}, 4, FailurePolicy())
    await runner.start(KindSettings())
    try:
        outcome = await runner.run(_batch("bench.noop", [{"b": 2, "a": 1}, "x"]))
    finally:
        await runner.close()
    results = BatchProcessed.model_validate_json(outcome.processed_json()).results  # as the aggregator reads it
    assert [r.status for r in results] == [ItemStatus.SUCCEEDED, ItemStatus.SUCCEEDED]
    assert [r.fingerprint for r in results] == [generic_fingerprint({"a": 1, "b": 2}), generic_fingerprint("x")]


async def test_a_kind_that_is_not_installed_fails_its_items_without_a_fingerprint() -> None:
    runner = KindRunner({}, 4, FailurePolicy())
    outcome = await runner.run(_batch("nope", [1]))
    assert [(r.status, r.fingerprint) for r in outcome.results] == [(ItemStatus.FAILED, None)]
