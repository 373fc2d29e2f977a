"""Dead letters a user can see and redrive: failed items come back, succeed and replace their failures."""

import asyncio
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import pytest

from sluice.contracts.events import JobCompleted, JobStatus, job_event
from sluice.contracts.topics import TopicNames
from tests.support.kafka import produce, read_until
from tests.support.pipeline import Pipeline, wait_for_status
from tests.support.poll import eventually

pytestmark = pytest.mark.e2e

MISSING = {1, 4}
"""The items whose page answers 404 until the site is fixed."""


class FixableSite:
    """A local site: /page/N answers a small HTML page, except pages in MISSING, which are 404 until fixed."""

    def __init__(self) -> None:
        self.fixed = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                number = int(self.path.rsplit("/", 1)[-1])
                if number in MISSING and not site.fixed.is_set():
                    self.send_error(404)
                    return
                body = f"<html><head><title>Page {number}</title></head><body>ok</body></html>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep the test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def url(self, number: int) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/page/{number}"


@pytest.fixture
def site() -> Iterator[FixableSite]:
    served = FixableSite()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


async def _sluice(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sluice.cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, stdout.decode(), stderr.decode()


async def test_failed_items_redriven_after_the_cause_is_fixed_complete_the_job_with_one_row_per_item(
    stack: Pipeline, site: FixableSite, stack_db: asyncpg.Pool, kafka_address: str, stack_topics: TopicNames
) -> None:
    await produce(kafka_address, stack_topics.results, b"{garbage", key=b"poison")
    async with stack.client("acme") as client:
        urls = [site.url(number) for number in range(6)]
        job_id = (await client.post("/v1/jobs", json={"kind": "web.page", "items": urls})).json()["job_id"]
        ended = await wait_for_status(client, job_id)
        assert (ended["status"], ended["counts"]["failed"]) == ("partially_failed", 2), stack.logs()

        async def dead_letters() -> list[dict] | None:
            answer = (await client.get("/v1/admin/dlq", params={"job_id": job_id})).json()
            return answer["dead_letters"] if len(answer["dead_letters"]) == len(MISSING) else None

        listed = await eventually(dead_letters, timeout=30)
        shown = (await client.get(f"/v1/admin/dlq/{listed[0]['id']}")).json()
        async with stack.client("x") as other:
            other_tenant = await other.get("/v1/admin/dlq", params={"job_id": job_id})
        site.fixed.set()
        redrive = await client.post("/v1/admin/dlq/redrive", json={"job_id": job_id})
        final = await wait_for_status(client, job_id, statuses={"completed"}, timeout=60)

    assert {letter["item_index"] for letter in listed} == MISSING
    assert all("404" in letter["reason"] and letter["redriven_at"] is None for letter in listed)
    assert shown["payload"]["items"][0]["input"] == {"url": urls[listed[0]["item_index"]]}
    assert shown["headers"]["x-sluice-job-id"] == job_id
    assert other_tenant.json()["dead_letters"] == []
    assert redrive.json() == {"redriven": 2}
    assert final["counts"] | {"pending": 0} == {
        "total": 6, "succeeded": 6, "failed": 0, "cancelled": 0, "timed_out": 0, "pending": 0
    }  # fmt: skip
    rows = await stack_db.fetch("SELECT item_index, status, generation FROM item_results WHERE job_id = $1", job_id)
    assert sorted((r["item_index"], r["status"], r["generation"]) for r in rows) == [
        (n, "succeeded", 1 if n in MISSING else 0) for n in range(6)
    ]

    def completed_twice(records: list) -> bool:
        """Announced partially failed, then completed. Repeats of one status are allowed: the two redriven items
        may land in two polls (the first re-announces partially failed), and delivery is at-least-once."""
        events = [job_event.validate_json(r.value) for r in records if r.key == job_id.encode()]
        statuses = [e.status for e in events if isinstance(e, JobCompleted)]
        changes = [status for n, status in enumerate(statuses) if n == 0 or status != statuses[n - 1]]
        return changes == [JobStatus.PARTIALLY_FAILED, JobStatus.COMPLETED]

    await read_until(kafka_address, stack_topics.job_events, completed_twice, timeout=30)
    undecodable = await eventually(
        lambda: stack_db.fetchrow(
            "SELECT reason, payload, raw_excerpt FROM dead_letters WHERE topic = $1", stack_topics.results_dlq
        )
    )
    assert undecodable["reason"].startswith("not a results-topic event") and undecodable["payload"] is None
    assert undecodable["raw_excerpt"] == "{garbage"

    code, out, err = await _sluice(
        "dlq", "list", "--json", "--url", stack.url, "--api-key", stack.api_key("acme"), "--job", job_id
    )
    assert code == 0, err
    listed_by_cli = json.loads(out)["dead_letters"]
    assert sorted((d["item_index"], d["redrive_count"], d["redriven_at"] is not None) for d in listed_by_cli) == [
        (n, 1, True) for n in sorted(MISSING)
    ]
    redrive_again = await _sluice(
        "dlq", "redrive", "--json", "--url", stack.url, "--api-key", stack.api_key("acme"), "--job", job_id
    )
    unfiltered = await _sluice("dlq", "redrive", "--url", stack.url, "--api-key", stack.api_key("acme"))
    assert redrive_again[:2] == (0, '{"redriven": 0}\n'), redrive_again[2]
    assert (
        unfiltered[0] == 2 and unfiltered[2].startswith("sluice: say which dead letters") and "--all" in unfiltered[2]
    )


async def test_sluice_dlq_says_in_one_line_when_intake_is_unreachable() -> None:
    code, out, err = await _sluice("dlq", "list", "--url", "http://127.0.0.1:9", "--api-key", "sk_any")

    assert code == 3
    assert err.startswith("sluice: cannot reach intake at http://127.0.0.1:9") and err.count("\n") == 1
    assert "Traceback" not in err and out == ""
