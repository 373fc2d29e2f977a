"""The scheduler's store against the real database: concurrent planners and emitters never share a rescan."""

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg

from shared.stores.rescans import PendingRescan, RescanStore
from shared.stores.watches import NewWatch, WatchConfig, WatchStore

T0 = datetime(2030, 1, 1, tzinfo=UTC)
ITEMS = 600


async def _periodic_watch(db: asyncpg.Pool, items: int = ITEMS) -> NewWatch:
    watch = NewWatch(uuid4(), "acme", "bench.noop", {}, "normal", WatchConfig("periodic", interval_s=3600), None)
    await WatchStore(db).create(watch, ((f"k{i}", i) for i in range(items)))
    return watch


async def _plan_all(store: RescanStore, now: datetime) -> None:
    while await store.plan_scheduled(now, limit=100, max_items=50) == 100:
        pass


async def test_two_planners_then_two_emitters_at_once_send_every_due_item_exactly_once(db: asyncpg.Pool) -> None:
    await _periodic_watch(db)
    await _plan_all(RescanStore(db), T0)  # stamps the first due times
    due_at = T0 + timedelta(hours=1)
    await asyncio.gather(_plan_all(RescanStore(db), due_at), _plan_all(RescanStore(db), due_at))
    published: list[PendingRescan] = []

    async def publish(pending: list[PendingRescan]) -> None:
        await asyncio.sleep(0.01)  # hold the rows locked a while, as a broker round trip would
        published.extend(pending)

    async def emit_all(emitter: RescanStore) -> None:
        while await emitter.emit_pending(publish, due_at, limit=3):
            pass

    await asyncio.gather(emit_all(RescanStore(db)), emit_all(RescanStore(db)))

    assert sorted(item for rescan in published for item in rescan.items) == list(range(ITEMS))
    triggers = [p.trigger_id for p in published]
    assert len(triggers) == len(set(triggers)), "no rescan is emitted twice"
    # Two planners may cut the due items into more, smaller rescans than one would; none exceeds max_items.
    assert len(triggers) >= ITEMS // 50 and all(len(p.items) <= 50 for p in published)
    assert await db.fetchval("SELECT count(*) FROM rescan_outbox WHERE emitted_at IS NULL") == 0


async def test_a_publish_that_fails_leaves_the_rescans_queued_with_the_same_trigger_ids(db: asyncpg.Pool) -> None:
    await _periodic_watch(db, items=10)
    store = RescanStore(db)
    await _plan_all(store, T0)
    await _plan_all(store, T0 + timedelta(hours=1))
    attempts: list[list[object]] = []

    async def broker_down(pending: list[PendingRescan]) -> None:
        attempts.append([p.trigger_id for p in pending])
        raise ConnectionError("broker down")

    async def broker_up(pending: list[PendingRescan]) -> None:
        attempts.append([p.trigger_id for p in pending])

    try:
        await store.emit_pending(broker_down, T0, limit=10)
    except ConnectionError:
        pass
    assert await store.emit_pending(broker_up, T0, limit=10) == 1
    assert attempts[0] == attempts[1]


async def test_after_an_outage_each_item_is_queued_once_and_next_due_an_interval_from_now(db: asyncpg.Pool) -> None:
    watch = await _periodic_watch(db, items=5)
    store = RescanStore(db)
    await _plan_all(store, T0)
    back = T0 + timedelta(days=5)

    await _plan_all(store, back)
    await _plan_all(store, back)

    assert await db.fetchval("SELECT sum(jsonb_array_length(items)) FROM rescan_outbox") == 5
    due = await db.fetch("SELECT DISTINCT next_due FROM watched_items WHERE watch_id = $1", watch.watch_id)
    assert [row["next_due"] for row in due] == [back + timedelta(hours=1)]


async def test_a_planner_takes_a_watchs_whole_burst_and_another_planner_skips_that_watch(db: asyncpg.Pool) -> None:
    watch = NewWatch(uuid4(), "acme", "bench.noop", {}, "normal", WatchConfig("event", debounce_s=30), None)
    await WatchStore(db).create(watch, ((f"k{i}", i) for i in range(2)))
    store = RescanStore(db)
    assert await store.note_trigger("acme", ["k0", "k1"], [], T0) == 2
    due = T0 + timedelta(seconds=31)
    async with db.acquire() as other_planner, other_planner.transaction():
        await other_planner.execute("SELECT 1 FROM watches WHERE watch_id = $1 FOR UPDATE", watch.watch_id)
        assert await store.plan_triggered(due, limit=100, max_items=50) == 0
    assert await store.plan_triggered(due, limit=100, max_items=50) == 2
    rescans = await db.fetch("SELECT items FROM rescan_outbox WHERE watch_id = $1", watch.watch_id)
    assert [sorted(row["items"]) for row in rescans] == [[0, 1]]  # one rescan for the burst, not one per item
