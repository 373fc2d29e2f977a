"""Two scheduler processes, as deploy/k8s runs them: their /metrics together report each job status once (a sum over
pods counts each job once), and when the reporting replica is killed the other takes over."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.ops.devstack.ports import free_port
from tests.support.poll import eventually
from tests.support.stack import FreshStacks

pytestmark = pytest.mark.e2e

Reported = dict[str, float]
"""One replica's job gauges: status → jobs, and "stalled" → sluice_jobs_stalled."""


async def _reported(client: httpx.AsyncClient, url: str) -> Reported | None:
    try:
        text = (await client.get(url)).text
    except httpx.TransportError:  # not listening yet, or killed
        return None
    reported = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sluice_jobs":
                reported[sample.labels["status"]] = sample.value
            elif sample.name == "sluice_jobs_stalled":
                reported["stalled"] = sample.value
    return reported


async def test_two_scheduler_replicas_report_each_job_status_once_and_the_survivor_takes_over(
    fresh_stack: FreshStacks,
) -> None:
    stack = await fresh_stack.start({"SLUICE_SCHEDULER_SWEEP_INTERVAL_S": "0.2"}, ("intake",))
    urls: dict[str, str] = {}
    for _ in range(2):
        port = free_port()
        urls[stack.start_service("scheduler", {"SLUICE_SCHEDULER_METRICS_PORT": str(port)})] = (
            f"http://127.0.0.1:{port}/metrics"
        )
    async with stack.client() as client:
        for items in ([1, 2], [3]):  # no processor runs: they stay unfinished
            assert (await client.post("/v1/jobs", json={"kind": "bench.noop", "items": items})).status_code == 202
    db = await fresh_stack.db(stack)
    expected: Reported = {row["status"]: float(row["n"]) for row in await db.fetch(
        "SELECT status, count(*) AS n FROM jobs GROUP BY status"
    )}  # fmt: skip
    expected["stalled"] = 0.0

    async with httpx.AsyncClient(timeout=5) as plain:

        async def reports_once(labels: list[str]) -> dict[str, Reported] | None:
            reports = {label: await _reported(plain, urls[label]) for label in labels}
            if any(report is None for report in reports.values()):
                return None
            together: Reported = {}
            for report in reports.values():
                for key, value in (report or {}).items():
                    together[key] = together.get(key, 0.0) + value
            return {label: report or {} for label, report in reports.items()} if together == expected else None

        both = await eventually(lambda: reports_once(list(urls)), timeout=60)
        [leader] = [label for label, report in both.items() if report]
        [survivor] = [label for label in urls if label != leader]
        stack.kill(leader)
        after = await eventually(lambda: reports_once([survivor]), timeout=30)

    assert sum(1 for report in both.values() if report) == 1, both
    assert after[survivor] == expected
