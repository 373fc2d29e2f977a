"""Change detection in the aggregator's write transaction, against the real database."""

from uuid import UUID

import asyncpg

from services.aggregator.changes import ChangeStep, change_events
from shared.kinds import load_kinds
from shared.stores.changes import ChangeStore
from shared.stores.jobs import JobStore
from shared.stores.results import ResultStore
from shared.wire import WireBatchProcessed
from sluice.contracts.events import ItemResult, ItemStatus
from tests.support.results import results_message

STEP = ChangeStep(ChangeStore(load_kinds()))


def _batch(job_id: UUID, fingerprints: dict[str, str | None], *, tenant: str = "acme") -> WireBatchProcessed:
    results = [
        ItemResult(index=i, status=ItemStatus.SUCCEEDED, input=key, output={"v": fp}, fingerprint=fp)
        for i, (key, fp) in enumerate(fingerprints.items())
    ]
    return results_message(tenant=tenant, job_id=job_id, kind="bench.noop", batch_index=0, results=results)


async def _changes(job_store: JobStore, job_id: UUID) -> list[str | None]:
    return [row["change"] async for page in job_store.iter_results(job_id) for row in page]


async def test_results_are_judged_against_the_items_previous_result(accepted_job, result_store: ResultStore, job_store):
    first, second = await accepted_job(total_items=3), await accepted_job(total_items=3)

    await result_store.record([_batch(first.job_id, {"a": "1", "b": "1", "c": "1"})], also=STEP)
    outcome = await result_store.record([_batch(second.job_id, {"a": "1", "b": "2", "c": "1"})], also=STEP)

    assert await _changes(job_store, first.job_id) == ["new", "new", "new"]
    assert await _changes(job_store, second.job_id) == ["unchanged", "changed", "unchanged"]
    (event,) = change_events(outcome.also)
    assert (event.job_id, event.changed, event.unchanged, event.new) == (second.job_id, [1], 2, 0)


async def test_a_redelivered_result_is_judged_once_and_counts_one_check(
    accepted_job, result_store: ResultStore, job_store, db: asyncpg.Pool
):
    first, second = await accepted_job(total_items=1), await accepted_job(total_items=1)
    await result_store.record([_batch(first.job_id, {"a": "1"})], also=STEP)
    batch = _batch(second.job_id, {"a": "2"})

    await result_store.record([batch], also=STEP)
    again = await result_store.record([batch], also=STEP)

    assert change_events(again.also) == []
    assert await _changes(job_store, second.job_id) == ["changed"]
    state = await db.fetchrow("SELECT checks, changes, fingerprint FROM item_states WHERE item_key = 'a'")
    assert (state["checks"], state["changes"], state["fingerprint"]) == (2, 1, "2")


async def test_items_are_compared_only_within_their_tenant(accepted_job, result_store: ResultStore, job_store):
    ours, theirs = await accepted_job(total_items=1), await accepted_job(total_items=1, tenant="globex")
    await result_store.record([_batch(ours.job_id, {"a": "1"})], also=STEP)
    await result_store.record([_batch(theirs.job_id, {"a": "2"}, tenant="globex")], also=STEP)
    assert await _changes(job_store, theirs.job_id) == ["new"]


async def test_a_result_without_a_fingerprint_is_left_unjudged(accepted_job, result_store: ResultStore, job_store):
    job = await accepted_job(total_items=1)
    await result_store.record([_batch(job.job_id, {"a": None})], also=STEP)
    assert await _changes(job_store, job.job_id) == [None]
