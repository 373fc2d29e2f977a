"""The dashboard in a real headless browser (Debian's chromium driven by Playwright): it loads behind the tenant
key, a running job's bar moves, and a finished job shows completed."""

import shutil
from collections.abc import Iterator

import pytest

from services.ops.devstack.ports import free_port
from services.ops.devstack.testsite import TestSite, serving_test_site
from tests.support.pipeline import Pipeline, wait_for_status
from tests.support.stack import unique_name

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="module")
def site() -> Iterator[TestSite]:
    with serving_test_site(pages=10) as running:
        yield running


@pytest.fixture(scope="module")
def stack_overrides() -> dict[str, str]:
    """One item per batch and one at a time, so a job's bar moves in steps; the dashboard reads the processor's
    metrics for partition lag."""
    processor_metrics = free_port()
    return {
        "SLUICE_INTAKE_BATCH_SIZE": "1",
        "SLUICE_PROCESSOR_MAX_IN_FLIGHT": "1",
        "SLUICE_PROCESSOR_METRICS_PORT": str(processor_metrics),
        "SLUICE_INTAKE_DASHBOARD_METRICS_URLS": f'["http://127.0.0.1:{processor_metrics}/metrics"]',
    }


async def test_the_dashboard_shows_a_running_jobs_bar_moving_and_a_finished_job_completed(
    stack: Pipeline, site: TestSite
) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)")
    from playwright.async_api import async_playwright

    tenant = unique_name("dash-")
    async with stack.client(tenant=tenant) as client:
        quick = (await client.post("/v1/jobs", json={"kind": "bench.noop", "items": [1, 2]})).json()["job_id"]
        await wait_for_status(client, quick, timeout=60)

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(f"{stack.url}/dashboard")
                await page.fill("#key", stack.api_key(tenant))
                await page.click("button[type=submit]")
                finished = page.locator(f'tr[data-job-id="{quick}"] .status')
                await finished.wait_for(timeout=15_000)
                assert await finished.text_content() == "completed"
                await page.evaluate(RECORD_BAR_WIDTHS)

                slow_items = [site.url(f"/slow?ms=250&n={n}") for n in range(24)]
                slow = (await client.post("/v1/jobs", json={"kind": "web.page", "items": slow_items})).json()["job_id"]
                status = f'tr[data-job-id="{slow}"] .status'
                await page.wait_for_function(
                    f"() => document.querySelector('{status}')?.textContent === 'completed'", timeout=60_000
                )
                seen = await page.evaluate(f"window.barWidths['{slow}'] || []")
                lag_topics = await page.locator("#lag tr td:first-child").all_text_contents()
                throughput_bars = await page.locator("#throughput rect").count()
            finally:
                await browser.close()
    moving = [percent for percent in seen if 0 < percent < 100]
    assert len(set(moving)) >= 2 and moving == sorted(moving), f"the bar moved forward while running: {seen}"
    assert seen[-1] == 100, seen
    assert any(topic.endswith(".tasks") for topic in lag_topics), f"partition lag of the tasks topic: {lag_topics}"
    assert throughput_bars >= 1, "a results-per-minute bar"


RECORD_BAR_WIDTHS = """() => {
  window.barWidths = {};
  new MutationObserver(() => {
    for (const fill of document.querySelectorAll("tr[data-job-id] .fill")) {
      const id = fill.closest("tr").dataset.jobId, percent = Number(fill.dataset.percent);
      const widths = (window.barWidths[id] ||= []);
      if (!Number.isNaN(percent) && widths[widths.length - 1] !== percent) widths.push(percent);
    }
  }).observe(document.getElementById("jobs"), {subtree: true, childList: true, attributes: true});
}"""
