"""What users and operators watch: live progress over SSE (from any intake replica), signed webhooks with retries,
and every service's /metrics, /healthz and /readyz; real services, broker and Postgres."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from services.ops.devstack.ports import free_port
from services.ops.devstack.testsite import TestSite, serving_test_site
from shared.webhooks import verify
from sluice.contracts.headers import SIGNATURE_HEADER
from tests.support.pipeline import Pipeline, wait_for_status
from tests.support.poll import eventually
from tests.support.stack import DATA_PATH, FreshStacks
from tests.support.webhook_receiver import receiving_webhooks

pytestmark = pytest.mark.e2e

SECRET = "test-webhook-secret"
SLOW_ITEM_MS = 200


@pytest.fixture(scope="module")
def site() -> Iterator[TestSite]:
    with serving_test_site(pages=10) as running:
        yield running


@pytest.fixture(scope="module")
def stack_overrides() -> dict[str, str]:
    """Batches of two items, two at a time in the processor (so progress comes in steps), and quick webhooks."""
    return {
        "SLUICE_INTAKE_BATCH_SIZE": "2",
        "SLUICE_PROCESSOR_MAX_IN_FLIGHT": "2",
        "SLUICE_WEBHOOK_SECRET": SECRET,
        "SLUICE_WEBHOOK_ALLOW_NETWORKS": '["127.0.0.0/8"]',
        "SLUICE_WEBHOOK_BASE_DELAY_S": "0.2",
        "SLUICE_WEBHOOK_POLL_INTERVAL_S": "0.2",
        "SLUICE_SCHEDULER_SWEEP_INTERVAL_S": "0.5",
    }


@pytest.fixture(scope="module")
def replica_port(stack: Pipeline) -> int:
    """A second intake replica of the module's stack (the test waits for it to be ready)."""
    port = free_port()
    stack.start_service("intake", {"SLUICE_INTAKE_PORT": str(port)})
    return port


def _slow_items(site: TestSite, count: int) -> list[str]:
    return [site.url(f"/slow?ms={SLOW_ITEM_MS}&n={n}") for n in range(count)]


async def _events(client: httpx.AsyncClient, job_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    async with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                yield name, json.loads(line.removeprefix("data: "))


async def test_a_job_streams_its_progress_and_completion_to_clients_on_either_intake_replica_then_just_its_status(
    stack: Pipeline, replica_port: int, site: TestSite
) -> None:
    async with stack.client() as client, stack.client() as replica:
        replica.base_url = httpx.URL(f"http://127.0.0.1:{replica_port}")
        await eventually(lambda: _ready(replica), timeout=60)
        response = await client.post("/v1/jobs", json={"kind": "web.page", "items": _slow_items(site, 16)})
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]

        async def collect(connection: httpx.AsyncClient) -> list[tuple[str, dict[str, Any]]]:
            return [event async for event in _events(connection, job_id)]

        first, second = await asyncio.gather(collect(client), collect(replica))
    seen = {"first": first, "second": second}
    for events in seen.values():
        names = [name for name, _ in events]
        assert names[0] == "status" and names[-1] == "completed", names
        assert events[-1][1]["percent"] == 100.0 and events[-1][1]["counts"]["succeeded"] == 16
    first = [data["percent"] for name, data in seen["first"] if name == "progress"]
    assert first and first == sorted(first) and 0 < first[0] < 100, "progress moved forward before completion"

    async with stack.client() as client:
        after_the_end = [event async for event in _events(client, job_id)]
        missing = await client.get("/v1/jobs/00000000-0000-0000-0000-000000000000/events")
    assert [(name, data["status"]) for name, data in after_the_end] == [("status", "completed")]
    assert missing.status_code == 404


async def _ready(client: httpx.AsyncClient) -> bool | None:
    try:
        return (await client.get("/readyz")).status_code == 200 or None
    except httpx.HTTPError:
        return None


async def test_a_signed_webhook_is_retried_with_backoff_and_every_service_reports_health_and_metrics(
    fresh_stack: FreshStacks,
) -> None:
    """On a stack of its own, with the scheduler: the counters it reads are the whole stack's."""
    ops_ports = {name: free_port() for name in ("processor", "aggregator", "scheduler")}
    metrics = {f"SLUICE_{name.upper()}_METRICS_PORT": str(port) for name, port in ops_ports.items()}
    stack = await fresh_stack.start(metrics, (*DATA_PATH, "scheduler"))
    with receiving_webhooks(answers=[500, 503]) as hooks:
        async with stack.client() as client:
            response = await client.post(
                "/v1/jobs", json={"kind": "bench.noop", "items": list(range(6)), "callback_url": hooks.url}
            )
            job_id = response.json()["job_id"]
            await wait_for_status(client, job_id, timeout=60)

            async def delivered() -> dict[str, Any] | None:
                body = (await client.get(f"/v1/jobs/{job_id}/deliveries")).json()
                done = [d for d in body["deliveries"] if d["status"] == "delivered"]
                return done[0] if done else None

            delivery = await eventually(delivered, timeout=30)
            intake_metrics = (await client.get("/metrics")).text
            completed = len((await client.get("/v1/jobs", params={"status": "completed"})).json()["jobs"])
        calls = hooks.received()
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 503, 200]
    assert delivery["attempts"] == 3 and delivery["event_type"] == "job.completed"
    assert len(calls) == 3 and len({c.body for c in calls}) == 1
    payload = json.loads(calls[-1].body)
    assert payload["event"]["job_id"] == job_id and payload["event"]["type"] == "job.completed"
    header = calls[-1].headers[SIGNATURE_HEADER.lower()]
    assert verify(SECRET, header, calls[-1].body, now=int(time.time()))
    assert not verify("another-secret", header, calls[-1].body, now=int(time.time()))

    urls = {"intake": stack.url, **{name: f"http://127.0.0.1:{port}" for name, port in ops_ports.items()}}
    async with httpx.AsyncClient(timeout=10) as plain:
        for name, url in urls.items():
            assert (await plain.get(f"{url}/healthz")).status_code == 200, name
            ready = await plain.get(f"{url}/readyz")
            assert ready.status_code == 200 and ready.json()["ready"] is True, (name, ready.text)

        async def scraped(name: str, needle: str) -> str | None:
            text = (await plain.get(f"{urls[name]}/metrics")).text
            return text if needle in text else None

        processor = await eventually(lambda: scraped("processor", 'kind="bench.noop",status="succeeded"'), timeout=20)
        aggregator = await eventually(lambda: scraped("aggregator", 'sluice_webhook_deliveries_total{outcome="d'), 20)
        scheduler = await eventually(lambda: scraped("scheduler", f'sluice_jobs{{status="completed"}} {completed}'), 20)
    assert _sample(processor, "sluice_items_processed_total", 'kind="bench.noop",status="succeeded"') == 6
    assert _sample(processor, "sluice_handler_duration_seconds_count", 'kind="bench.noop",outcome="succeeded"') == 6
    assert 'sluice_consumer_lag{group="processor-' in processor, "lag per partition of the tasks topic"
    assert _sample(aggregator, "sluice_item_e2e_latency_seconds_count", 'kind="bench.noop"') == 6
    assert _sample(aggregator, "sluice_jobs_finished_total", 'status="completed"') == completed
    assert _sample(aggregator, "sluice_webhook_deliveries_total", 'outcome="retrying"') == 2
    assert _sample(scheduler, "sluice_jobs", 'status="completed"') == completed
    assert "sluice_sse_clients" in intake_metrics


def _sample(text: str, name: str, labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{{{labels}}} in\n{text}")
