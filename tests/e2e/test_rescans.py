"""Rescans end to end: watches on submit, every trigger mode, change detection, two scheduler replicas, restart.

One stack for the module (intake, processor, aggregator and two scheduler replicas) on a fake clock the tests
move; each test has its own tenant and deletes its watch when done, so the others never see its rescans. The
restart test kills the schedulers, on a stack (and clock) of its own.
"""

import json
import signal
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.ops.devstack.testsite import TestSite, serving_test_site
from shared.rescan_rules import adaptive_interval
from sluice.contracts.events import TERMINAL_STATUSES, RescanTrigger
from sluice.contracts.headers import REASON_HEADER
from tests.support.clock import FakeClock
from tests.support.kafka import produce, read_until
from tests.support.pipeline import Pipeline, wait_for_status
from tests.support.poll import eventually
from tests.support.stack import DATA_PATH, FreshStacks, unique_name

pytestmark = [pytest.mark.e2e, pytest.mark.scheduler]

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def site() -> Iterator[TestSite]:
    with serving_test_site(pages=200) as running:
        yield running


@pytest.fixture(scope="module")
def clock(tmp_path_factory: pytest.TempPathFactory) -> FakeClock:
    return FakeClock(tmp_path_factory.mktemp("clock") / "now")


@pytest.fixture(scope="module")
def stack_overrides(clock: FakeClock) -> dict[str, str]:
    """Rescans planned five times a second and statistics every round, on the fake clock."""
    return {
        "SLUICE_RESCAN_TICK_S": "0.2",
        "SLUICE_RESCAN_STATS_INTERVAL_S": "0",
        "SLUICE_SCHEDULER_SWEEP_INTERVAL_S": "60",
        "SLUICE_RESCAN_CLOCK_FILE": str(clock.path),
    }


@pytest.fixture(scope="module")
def stack_services() -> tuple[str, ...]:
    """The data path plus two scheduler replicas sharing the fake clock."""
    return (*DATA_PATH, "scheduler", "scheduler")


@pytest.fixture
def tenant() -> str:
    return unique_name("tenant-")


async def _watch(client: httpx.AsyncClient, kind: str, items: list[Any], rescan: dict[str, Any]) -> str:
    """Submit a job that asks for a watch; wait for it to finish and for the scheduler to stamp the watch."""
    response = await client.post("/v1/jobs", json={"kind": kind, "items": items, "rescan": rescan})
    assert response.status_code == 202, response.text
    body = response.json()
    assert (await wait_for_status(client, body["job_id"], timeout=60))["status"] == "completed"
    await _stamped(client, body["watch_id"], rescan["mode"])
    return body["watch_id"]


async def _stamped(client: httpx.AsyncClient, watch_id: str, mode: str) -> None:
    """Wait until the scheduler has given the watch its first due time (from its clock as it is now)."""

    async def probe() -> bool | None:
        page = (await client.get(f"/v1/watches/{watch_id}/items", params={"limit": 1000})).json()["items"]
        return True if all(item["next_due"] or mode in ("event", "sampled") for item in page) else None

    await eventually(probe, timeout=10)
    if mode == "sampled":
        await eventually(_field(client, watch_id, "next_due"), timeout=10)


def _field(client: httpx.AsyncClient, watch_id: str, name: str) -> Any:
    async def probe() -> Any:
        return (await client.get(f"/v1/watches/{watch_id}")).json()[name]

    return probe


async def _rescans(client: httpx.AsyncClient, watch_id: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """Wait until the watch has at least ``count`` rescans sent and their jobs finished; oldest first."""

    async def probe() -> list[dict[str, Any]] | None:
        rescans = (await client.get(f"/v1/watches/{watch_id}/rescans")).json()["rescans"]
        sent = [r for r in rescans if r["emitted_at"]]
        return sent if len(sent) >= count else None

    sent = list(reversed(await eventually(probe, timeout=timeout)))
    for rescan in sent:
        await eventually(_finished(client, rescan["job_id"]), timeout=timeout)
    return sent


def _finished(client: httpx.AsyncClient, job_id: str) -> Callable[[], Awaitable[bool | None]]:
    """A probe: the job exists (intake has taken the rescan from the requests topic) and is finished."""

    async def probe() -> bool | None:
        response = await client.get(f"/v1/jobs/{job_id}")
        return True if response.status_code == 200 and response.json()["status"] in TERMINAL_STATUSES else None

    return probe


async def _stats_after(
    client: httpx.AsyncClient, moment: datetime, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The tenant's statistics once the scheduler computed them at ``moment`` or later and ``ready`` holds."""

    async def probe() -> dict[str, Any] | None:
        stats = (await client.get("/v1/watches/stats")).json()
        fresh = stats["as_of"] and datetime.fromisoformat(stats["as_of"]) >= moment
        return stats if fresh and ready(stats) else None

    return await eventually(probe, timeout=20)


async def _results(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    return (await client.get(f"/v1/jobs/{job_id}/results", params={"limit": 1000})).json()["items"]


async def test_a_periodic_watch_rescans_on_its_interval_and_marks_what_changed(
    stack: Pipeline, site: TestSite, clock: FakeClock, tenant: str, kafka_address: str
) -> None:
    pages = [site.page_url(i) for i in range(3)]
    async with stack.client(tenant) as client:
        watch_id = await _watch(client, "web.page", pages, {"mode": "periodic", "interval": "1h"})
        site.change(1)
        clock.advance(HOUR)
        (rescan,) = await _rescans(client, watch_id, 1)
        results = await _results(client, rescan["job_id"])
        ndjson = (await client.get(f"/v1/jobs/{rescan['job_id']}/results.ndjson")).text.splitlines()
        stats = await _stats_after(client, clock.now, lambda s: s["scans_issued"] >= 3)
        await client.delete(f"/v1/watches/{watch_id}")

    assert rescan["reason"] == "periodic" and rescan["items"] == 3
    changes = {r["input"]["url"]: r["change"] for r in results}
    assert changes == {pages[0]: "unchanged", pages[1]: "changed", pages[2]: "unchanged"}
    assert [json.loads(line)["change"] for line in ndjson] == [r["change"] for r in results]
    assert (stats["watched_items"], stats["scans_issued"], stats["due_next_hour"]) == (3, 3, 3)

    topics = stack.topics
    key = rescan["job_id"].encode()
    records = await read_until(
        kafka_address, topics.job_events, lambda rs: any(r.key == key and b"items.changed" in r.value for r in rs)
    )
    (event,) = [json.loads(r.value) for r in records if r.key == key and b"items.changed" in r.value]
    changed_index = next(r["index"] for r in results if r["change"] == "changed")
    assert (event["changed"], event["unchanged"]) == ([changed_index], 2)


async def test_markup_noise_is_not_a_change(stack: Pipeline, site: TestSite, clock: FakeClock, tenant: str) -> None:
    volatile = site.url("/volatile/7")  # a fresh nonce in the markup on every fetch
    async with stack.client(tenant) as client:
        watch_id = await _watch(client, "web.page", [volatile], {"mode": "periodic", "interval": "1h"})
        clock.advance(HOUR)
        (rescan,) = await _rescans(client, watch_id, 1)
        (result,) = await _results(client, rescan["job_id"])
        await client.delete(f"/v1/watches/{watch_id}")
    assert result["change"] == "unchanged"


async def test_an_adaptive_watch_rescans_changing_items_more_often_than_stable_ones(
    stack: Pipeline, site: TestSite, clock: FakeClock, tenant: str
) -> None:
    volatile_page, stable_page = site.page_url(20), site.page_url(21)
    rule = {"mode": "adaptive", "min_interval": "1h", "max_interval": "4d"}
    async with stack.client(tenant) as client:
        watch_id = await _watch(client, "web.page", [volatile_page, stable_page], rule)
        first = (await client.get(f"/v1/watches/{watch_id}/items")).json()["items"]
        start = first[0]["interval_s"]
        site.change(20)
        clock.advance(timedelta(seconds=start))
        await _rescans(client, watch_id, 1)  # both due: each has only its first (new) result to learn from
        grown = adaptive_interval(start, 3600, 4 * 86400, new_checks=1, new_changes=0)
        site.change(20)
        clock.advance(timedelta(seconds=grown))
        await _rescans(client, watch_id, 2)  # both due again; now the volatile page has changed, the stable not
        items = {i["input"]["url"]: i for i in (await client.get(f"/v1/watches/{watch_id}/items")).json()["items"]}
        clock.advance(timedelta(seconds=items[volatile_page]["interval_s"]))
        third = (await _rescans(client, watch_id, 3))[-1]
        (result,) = await _results(client, third["job_id"])
        await client.delete(f"/v1/watches/{watch_id}")

    assert items[volatile_page]["interval_s"] == adaptive_interval(grown, 3600, 4 * 86400, 1, 1)
    assert items[stable_page]["interval_s"] == adaptive_interval(grown, 3600, 4 * 86400, 1, 0)
    assert items[volatile_page]["interval_s"] < items[stable_page]["interval_s"]
    assert (third["items"], result["input"]["url"], result["change"]) == (1, volatile_page, "unchanged")


async def test_a_burst_of_triggers_causes_one_rescan_of_the_matching_items(
    stack: Pipeline, site: TestSite, clock: FakeClock, tenant: str, kafka_address: str
) -> None:
    topics = stack.topics
    pages = [site.page_url(i) for i in range(30, 33)]
    rule = {"mode": "event", "debounce": 30, "tags": ["brand-x"]}
    async with stack.client(tenant) as client:
        watch_id = await _watch(client, "web.page", pages, rule)
        site.change(30)
        await produce(kafka_address, topics.triggers, b'{"tenant": "' + tenant.encode() + b'", "keys": "oops"}')
        for _ in range(4):
            await _trigger(kafka_address, topics.triggers, RescanTrigger(tenant=tenant, keys=[pages[0]]))
        await _trigger(kafka_address, topics.triggers, RescanTrigger(tenant=tenant, keys=[pages[0], pages[1]]))

        async def both_pending() -> bool | None:
            items = (await client.get(f"/v1/watches/{watch_id}/items")).json()["items"]
            return True if items[0]["trigger_due"] and items[1]["trigger_due"] else None

        await eventually(both_pending, timeout=20)  # the last trigger of the burst is in, so all of it is
        clock.advance(timedelta(seconds=31))
        (burst,) = await _rescans(client, watch_id, 1)
        burst_results = await _results(client, burst["job_id"])
        await _trigger(kafka_address, topics.triggers, RescanTrigger(tenant=tenant, tags=["brand-x"]))
        await eventually(both_pending, timeout=20)
        clock.advance(timedelta(seconds=31))
        rescans = await _rescans(client, watch_id, 2)
        await client.delete(f"/v1/watches/{watch_id}")

    rejected = await read_until(kafka_address, topics.rejected, lambda rs: any(tenant.encode() in r.value for r in rs))
    (bad,) = [r for r in rejected if tenant.encode() in r.value]
    assert b"keys" in dict(bad.headers)[REASON_HEADER]
    assert (burst["reason"], burst["items"]) == ("event", 2)
    assert {r["input"]["url"]: r["change"] for r in burst_results} == {pages[0]: "changed", pages[1]: "unchanged"}
    assert [r["items"] for r in rescans] == [2, 3]  # one rescan per burst; the tag matched the whole watch


async def _trigger(address: str, topic: str, trigger: RescanTrigger) -> None:
    await produce(address, topic, trigger.model_dump_json().encode(), key=trigger.tenant.encode())


async def test_a_sample_without_changes_does_not_escalate_and_one_with_changes_does(
    stack: Pipeline, site: TestSite, clock: FakeClock, tenant: str
) -> None:
    pages = [site.page_url(i) for i in range(40, 50)]
    rule = {"mode": "sampled", "interval": "1d", "sample": 0.2, "threshold": 0.05}
    async with stack.client(tenant) as client:
        watch_id = await _watch(client, "web.page", pages, rule)
        clock.advance(DAY)
        (quiet,) = await _rescans(client, watch_id, 1)
        calm = await eventually(_field(client, watch_id, "last_sample"), timeout=20)
        site.change(*range(40, 50))
        clock.advance(DAY)
        await _rescans(client, watch_id, 3)
        escalated = await _field(client, watch_id, "last_sample")()
        rescans = (await client.get(f"/v1/watches/{watch_id}/rescans")).json()["rescans"]
        escalation = next(r for r in rescans if r["reason"] == "escalation")
        results = await _results(client, escalation["job_id"])
        await client.delete(f"/v1/watches/{watch_id}")

    assert (quiet["reason"], quiet["items"]) == ("sample", 2)
    assert (calm["sampled"], calm["reported"], calm["changed"], calm["escalated"]) == (2, 2, 0, False)
    assert (escalated["sampled"], escalated["changed"], escalated["escalated"]) == (2, 2, True)
    assert sorted(r["reason"] for r in rescans) == ["escalation", "sample", "sample"]
    assert escalation["items"] == 8 and {r["change"] for r in results} == {"changed"}


async def test_a_tenant_lists_pauses_resumes_changes_and_deletes_its_watches(
    stack: Pipeline, clock: FakeClock, tenant: str
) -> None:
    async with stack.client(tenant) as client, stack.client(unique_name("other-")) as stranger:
        invalid = await client.post("/v1/jobs", json={"kind": "bench.noop", "items": [1], "rescan": {"mode": "x"}})
        ids = [await _watch(client, "bench.noop", [f"w{i}"], {"mode": "periodic", "interval": "1h"}) for i in range(2)]
        upload = await client.post(
            "/v1/jobs",
            params={"kind": "bench.noop", "rescan": json.dumps({"mode": "periodic", "interval": "1h"})},
            content=b'"n1"\n"n2"\n',
            headers={"content-type": "application/x-ndjson"},
        )
        ids.append(upload.json()["watch_id"])
        await _stamped(client, ids[2], "periodic")
        plain = (await client.post("/v1/jobs", json={"kind": "bench.noop", "items": ["p1", "p2", "p3"]})).json()
        await wait_for_status(client, plain["job_id"])
        later = await client.post("/v1/watches", json={"job_id": plain["job_id"], "rescan": {"mode": "event"}})
        again = await client.post("/v1/watches", json={"job_id": plain["job_id"], "rescan": {"mode": "event"}})
        ids.append(later.json()["watch_id"])
        first = (await client.get("/v1/watches", params={"limit": 3})).json()
        rest = (await client.get("/v1/watches", params={"limit": 3, "cursor": first["next_cursor"]})).json()
        hidden = await stranger.get(f"/v1/watches/{ids[0]}")

        paused = (await client.post(f"/v1/watches/{ids[0]}/pause")).json()
        clock.advance(HOUR)
        await _stats_after(client, clock.now, lambda s: s["scans_issued"] >= 3)  # a round after the advance
        while_paused = (await client.get(f"/v1/watches/{ids[0]}/rescans")).json()["rescans"]
        clock.advance(HOUR)
        resumed = (await client.post(f"/v1/watches/{ids[0]}/resume")).json()
        (catch_up,) = await _rescans(client, ids[0], 1)

        changed = await client.patch(f"/v1/watches/{ids[1]}", json={"interval": "6h"})
        refused = await client.patch(f"/v1/watches/{ids[1]}", json={"interval": "soon"})
        gone = [(await client.delete(f"/v1/watches/{watch_id}")).status_code for watch_id in ids]
        after = (await client.get("/v1/watches")).json()["watches"]

    assert invalid.status_code == 422 and invalid.json()["error"]["field"] == "rescan.mode"
    assert upload.status_code == 202 and upload.json()["total_items"] == 2
    assert later.status_code == 201 and (later.json()["items"], later.json()["rescan"]["mode"]) == (3, "event")
    assert again.status_code == 409 and again.json()["error"]["field"] == "job_id"
    listed = [w["watch_id"] for w in first["watches"] + rest["watches"]]
    assert sorted(listed) == sorted(ids) and rest["next_cursor"] is None and len(first["watches"]) == 3
    assert sorted(w["items"] for w in first["watches"] + rest["watches"]) == [1, 1, 2, 3]
    assert hidden.status_code == 404
    assert (paused["paused"], resumed["paused"], while_paused) == (True, False, [])
    assert catch_up["items"] == 1
    assert changed.status_code == 200 and changed.json()["rescan"]["interval"] == 6 * 3600
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "interval"
    assert gone == [204, 204, 204, 204] and after == []


async def _scanned_items(db: asyncpg.Pool, tenant: str) -> list[Any]:
    """Every item of every rescan job intake accepted for the tenant (a duplicate trigger would show twice)."""
    rows = await db.fetch(
        "SELECT o.items FROM rescan_outbox o JOIN jobs j ON j.job_id = o.trigger_id WHERE o.tenant = $1", tenant
    )
    return sorted(item for row in rows for item in row["items"])


async def test_two_scheduler_replicas_never_send_the_same_rescan_twice(
    stack: Pipeline, clock: FakeClock, tenant: str, stack_db: asyncpg.Pool
) -> None:
    items = list(range(40))
    async with stack.client(tenant) as client:
        watch_id = await _watch(client, "bench.noop", items, {"mode": "periodic", "interval": "1h"})
        for round_ in (1, 2, 3):
            clock.advance(HOUR)

            async def scanned(expected: int = round_ * len(items)) -> int | None:
                scans = await _field(client, watch_id, "scans")()
                return scans if scans >= expected else None

            await eventually(scanned, timeout=30)
            await _rescans(client, watch_id, round_)
        jobs = await stack_db.fetchval("SELECT count(*) FROM jobs WHERE tenant = $1 AND source = 'rescan'", tenant)
        sent = await stack_db.fetchval("SELECT count(*) FROM rescan_outbox WHERE tenant = $1", tenant)
        scanned_items = await _scanned_items(stack_db, tenant)
        await client.delete(f"/v1/watches/{watch_id}")

    assert not [e for e in stack.supervisor.exits if e.name.startswith("scheduler")]  # both ran throughout
    assert scanned_items == sorted(items * 3)
    assert jobs == sent


async def test_a_restarted_scheduler_catches_up_once_on_what_fell_due_while_it_was_down(
    fresh_stack: FreshStacks, tenant: str, tmp_path: Path
) -> None:
    """On a stack of its own: it kills both schedulers, and moves a clock no other test's stack reads."""
    clock = FakeClock(tmp_path / "now")
    stack = await fresh_stack.start({"SLUICE_RESCAN_CLOCK_FILE": str(clock.path)})
    db = await fresh_stack.db(stack)
    items = list(range(10))
    async with stack.client(tenant) as client:
        watch_id = await _watch(client, "bench.noop", items, {"mode": "periodic", "interval": "1d"})
        schedulers = [label for label in stack.supervisor.pids() if label.startswith("scheduler")]
        for label in schedulers:
            stack.kill(label, signal.SIGKILL)

        async def all_down() -> bool | None:
            exited = {e.name for e in stack.supervisor.exits}
            return True if exited >= set(schedulers) else None

        await eventually(all_down, timeout=10)
        clock.advance(5 * DAY)  # five rescans fell due while no scheduler ran
        stack.start_service("scheduler")
        (rescan,) = await _rescans(client, watch_id, 1)
        stack.start_service("scheduler")
        restarted_at = clock.now
        stats = await _stats_after(client, restarted_at, lambda s: s["scans_issued"] >= len(items))
        page = (await client.get(f"/v1/watches/{watch_id}/items")).json()["items"]
        rescans = (await client.get(f"/v1/watches/{watch_id}/rescans")).json()["rescans"]
        scanned_items = await _scanned_items(db, tenant)
        await client.delete(f"/v1/watches/{watch_id}")

    assert len(rescans) == 1 and rescan["items"] == len(items)
    assert scanned_items == items
    assert {datetime.fromisoformat(i["next_due"]) for i in page} == {restarted_at + DAY}
    assert (stats["scans_issued"], stats["daily_equivalent"]) == (10, 50)
    assert stats["scans_saved"] == 40
