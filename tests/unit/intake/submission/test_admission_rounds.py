"""GroupedAdmissions' rounds, with a store whose statements the test lets finish one by one."""

import asyncio
from uuid import uuid4

from services.intake.submission.group_commit import GroupedAdmissions
from shared.records import NewJob
from shared.stores.admission import AdmissionLimits, GroupEntry
from sluice.contracts.events import Priority
from tests.support.poll import let_tasks_run

LIMITS = AdmissionLimits(max_active_jobs=10, max_waiting_jobs=10, retry_after_s=30)


def entry(tenant: str = "acme") -> GroupEntry:
    job = NewJob(
        job_id=uuid4(), tenant=tenant, kind="bench.noop", priority=Priority.NORMAL, options={}, callback_url=None,
        source="rest", idempotency_key=None, request_fingerprint=None, total_items=1, total_batches=1,
    )  # fmt: skip
    return GroupEntry(job, LIMITS, [(0, 1, b"{}")], b"{}")


class HeldStore:
    """Each register_group call waits until the test finishes it; its outcome is the job ids it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[GroupEntry], asyncio.Future[None]]] = []

    async def register_group(self, tenant: str, entries: list[GroupEntry]) -> list[object]:
        done = asyncio.get_running_loop().create_future()
        self.calls.append((entries, done))
        await done
        return [e.job.job_id for e in entries]


async def test_while_a_round_is_in_the_database_the_next_goes_too_and_later_submits_wait_for_one_to_finish():
    store = HeldStore()
    grouped = GroupedAdmissions(store, max_group=64, max_rounds=2)  # type: ignore[arg-type]
    first = asyncio.ensure_future(grouped.register(entry()))
    await let_tasks_run()
    second = asyncio.ensure_future(grouped.register(entry()))
    await let_tasks_run()
    assert [len(entries) for entries, _ in store.calls] == [1, 1], "two rounds in flight, one job each"

    later = [asyncio.ensure_future(grouped.register(entry())) for _ in range(3)]
    await let_tasks_run()
    assert len(store.calls) == 2, "a third round waits for one of the two"

    store.calls[1][1].set_result(None)  # the second round commits first
    await let_tasks_run()
    assert await second == store.calls[1][0][0].job.job_id
    assert [len(entries) for entries, _ in store.calls] == [1, 1, 3], "the waiting submits share the next round"
    assert not first.done()

    store.calls[0][1].set_result(None)
    store.calls[2][1].set_result(None)
    assert await first == store.calls[0][0][0].job.job_id
    assert await asyncio.gather(*later) == [e.job.job_id for e in store.calls[2][0]]


async def test_tenants_have_their_own_rounds_and_a_cancelled_round_cancels_only_what_no_round_will_take():
    store = HeldStore()
    grouped = GroupedAdmissions(store, max_group=64, max_rounds=1)  # type: ignore[arg-type]
    acme = asyncio.ensure_future(grouped.register(entry("acme")))
    other = asyncio.ensure_future(grouped.register(entry("other")))
    await let_tasks_run()
    assert sorted(entries[0].job.tenant for entries, _ in store.calls) == ["acme", "other"]

    queued = asyncio.ensure_future(grouped.register(entry("acme")))
    await let_tasks_run()
    for task in list(grouped._rounds["acme"]):  # as at shutdown
        task.cancel()
    await let_tasks_run()
    assert acme.cancelled() or isinstance(acme.exception(), asyncio.CancelledError)
    assert queued.cancelled(), "nothing is left waiting for a round that will never come"
    store.calls[1][1].set_result(None)
    assert await other == store.calls[1][0][0].job.job_id
