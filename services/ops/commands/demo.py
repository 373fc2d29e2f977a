"""`sluice demo`: the whole stack plus a local test site; scrape it, show live progress, print a summary."""

import argparse
import sys
import time
from pathlib import Path

import httpx

from services.ops.commands.tenants import issue_key
from services.ops.devstack.ports import free_port
from services.ops.devstack.stack import dev_stack
from services.ops.devstack.testsite import serving_test_site
from sluice.cli.progress import render_progress
from sluice.contracts.events import TERMINAL_STATUSES

DEMO_TENANT = "demo"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the stack, scrape a local test site with a web.page job, and summarise",
        description=(
            "Start the broker, Postgres, Redis and the four services (as `sluice dev up` does), serve a local "
            "test site of business pages, submit a web.page job for every page, show its progress, print a "
            "summary and stop everything. Needs no internet."
        ),
    )
    demo.add_argument("--pages", type=int, default=3000, help="pages to scrape (default: 3000)")
    demo.add_argument("--data-dir", type=Path, default=Path(".sluice/demo"), help="embedded data and service logs")
    demo.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds (default 600)")
    demo.set_defaults(run=run_demo)


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run_demo(args: argparse.Namespace) -> int:
    args.data_dir.mkdir(parents=True, exist_ok=True)
    service_log = args.data_dir / "services.log"
    say(f"starting the stack (service logs: {service_log}) ...")
    with (
        service_log.open("w", encoding="utf-8") as log_file,
        serving_test_site(pages=args.pages) as site,
        dev_stack(
            args.data_dir,
            intake_port=free_port(),
            extra_env={
                "SLUICE_KINDS_WEB_ALLOW_NETWORKS": '["127.0.0.0/8"]',
                "SLUICE_KAFKA_TOPIC_PREFIX": "sluice-demo",
            },
            service_output=log_file,
        ) as stack,
    ):
        say(f"stack up: intake {stack.intake_url}, test site {site.base_url}")
        # The progress bar polls four times a second, above the default plan's 100 requests a minute.
        api_key = issue_key(DEMO_TENANT, stack.database_url, {"requests_per_minute": 1200})
        say(f"tenant {DEMO_TENANT} has a new API key: {api_key}")
        headers = {"Authorization": f"Bearer {api_key}"}
        with httpx.Client(base_url=stack.intake_url, headers=headers, timeout=60, trust_env=False) as client:
            return _scrape(client, [site.page_url(i) for i in range(args.pages)], args.timeout)


def _scrape(client: httpx.Client, urls: list[str], timeout: float) -> int:
    started = time.monotonic()
    response = client.post("/v1/jobs", json={"kind": "web.page", "items": urls})
    if response.status_code != 202:
        say(f"submission refused: {response.status_code} {response.text}")
        return 1
    job_id = response.json()["job_id"]
    say(f"submitted web.page job {job_id} with {len(urls)} pages")
    status: dict = {}
    while time.monotonic() - started < timeout:
        status = client.get(f"/v1/jobs/{job_id}").json()
        sys.stdout.write("\r" + render_progress(status, time.monotonic() - started))
        sys.stdout.flush()
        if status["status"] in TERMINAL_STATUSES:
            break
        time.sleep(0.25)  # refresh interval of the progress bar
    sys.stdout.write("\n")
    elapsed = time.monotonic() - started
    counts = status.get("counts", {})
    first = client.get(f"/v1/jobs/{job_id}/results", params={"limit": 1}).json()["items"]
    say("")
    say("summary")
    say(f"  status     {status.get('status', 'unknown')}")
    say(f"  ok         {counts.get('succeeded', 0)}")
    say(f"  failed     {counts.get('failed', 0)}")
    say(f"  elapsed    {elapsed:.1f} s (submit to last result stored)")
    say(f"  throughput {counts.get('succeeded', 0) / elapsed:.0f} items/s")
    if first and first[0]["output"]:
        say(f"  sample     item 0: title {first[0]['output']['title']!r}, emails {first[0]['output']['emails']}")
    if status.get("status") != "completed":
        ended = status.get("status") in TERMINAL_STATUSES
        say("the job did not succeed" if ended else "the job did not complete in time")
        return 1
    return 0
