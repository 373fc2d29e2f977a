"""A user's view of the pipeline: submit over HTTP, watch status, read results; real services and broker."""

import csv
import io
import json
from collections.abc import Iterator

import asyncpg
import pytest
from aiokafka import ConsumerRecord

from services.ops.devstack.testsite import TestSite, expected_email, expected_title, serving_test_site
from sluice.contracts.topics import TopicNames
from tests.support.kafka import read_until
from tests.support.pipeline import Pipeline, wait_for_status
from tests.support.poll import eventually
from tests.support.tenants import issue_key

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def site() -> Iterator[TestSite]:
    with serving_test_site(pages=2000) as running:
        yield running


async def test_web_page_job_of_2000_pages_completes_with_one_correct_row_per_item(
    stack: Pipeline, site: TestSite, stack_db: asyncpg.Pool
) -> None:
    urls = [site.page_url(i) for i in range(2000)]
    async with stack.client() as client:
        response = await client.post("/v1/jobs", json={"kind": "web.page", "items": urls})
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert accepted["total_items"] == 2000
        assert accepted["total_batches"] == 40

        final = await wait_for_status(client, accepted["job_id"], timeout=180)

    assert final["status"] == "completed", stack.logs()
    counts = final["counts"]
    assert counts == {"total": 2000, "succeeded": 2000, "failed": 0, "cancelled": 0, "timed_out": 0, "pending": 0}
    assert final["percent"] == 100.0
    rows = await stack_db.fetch(
        "SELECT item_index, status, output FROM item_results WHERE job_id = $1 ORDER BY item_index",
        accepted["job_id"],
    )
    assert [row["item_index"] for row in rows] == list(range(2000))
    for row in rows:
        i = row["item_index"]
        assert row["status"] == "succeeded"
        assert row["output"]["title"] == expected_title(i)
        assert expected_email(i) in row["output"]["emails"]


async def test_ndjson_upload_of_100000_items_completes_with_100000_rows_and_announces_it_downstream(
    stack: Pipeline, stack_db: asyncpg.Pool, kafka_address: str, stack_topics: TopicNames
) -> None:
    body = b"".join(json.dumps({"n": n}).encode() + b"\n" for n in range(100_000))
    await issue_key(stack.env["DATABASE_URL"], "bulk-uploader", {"max_batch_size": 1000})  # the plan allows 1,000
    async with stack.client("bulk-uploader") as client:
        response = await client.post(
            "/v1/jobs", params={"kind": "bench.noop"}, content=body, headers={"Content-Type": "application/x-ndjson"}
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        assert response.json()["total_items"] == 100_000
        assert response.json()["total_batches"] == 100, "bench.noop asks for 1,000-item batches (Kind.batch_size)"

        final = await wait_for_status(client, job_id, timeout=240)

    assert final["status"] == "completed", stack.logs()
    assert final["counts"]["succeeded"] == 100_000
    stored = await stack_db.fetchval("SELECT count(*) FROM item_results WHERE job_id = $1", job_id)
    assert stored == 100_000
    sample = await stack_db.fetchrow(
        "SELECT input, output FROM item_results WHERE job_id = $1 AND item_index = 4242", job_id
    )
    assert sample["input"] == sample["output"] == {"n": 4242}

    def completion_seen(records: list[ConsumerRecord]) -> bool:
        return any(json.loads(r.value)["type"] == "job.completed" for r in records if r.key == job_id.encode())

    records = await read_until(kafka_address, stack_topics.job_events, completion_seen)
    events = [json.loads(r.value) for r in records if r.key == job_id.encode()]
    progress = [event for event in events if event["type"] == "job.progress"]
    completed = [event for event in events if event["type"] == "job.completed"]
    assert completed[0]["counts"]["succeeded"] == 100_000 and completed[0]["status"] == "completed"
    assert 1 <= len(progress) < 2000, "progress is throttled, not one event per batch"
    assert [event["counts"]["succeeded"] for event in progress] == sorted(e["counts"]["succeeded"] for e in progress)


async def test_status_answers_right_after_the_202_without_a_404(stack: Pipeline) -> None:
    async with stack.client() as client:
        response = await client.post("/v1/jobs", json={"kind": "bench.noop", "items": list(range(120))})
        status = await client.get(response.json()["status_url"].removeprefix(stack.url))

    assert status.status_code == 200
    body = status.json()
    assert body["status"] in {"queued", "running", "completed"}
    assert body["counts"]["total"] == 120
    assert body["counts"]["pending"] == 120 - body["counts"]["succeeded"]


async def test_results_page_through_every_item_once_and_export_as_ndjson_and_csv(stack: Pipeline) -> None:
    items = [{"n": n} for n in range(250)]
    async with stack.client() as client:
        job_id = (await client.post("/v1/jobs", json={"kind": "bench.noop", "items": items})).json()["job_id"]
        await wait_for_status(client, job_id)

        seen: list[int] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            page = (await client.get(f"/v1/jobs/{job_id}/results", params=params)).json()
            seen += [item["index"] for item in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        ndjson = (await client.get(f"/v1/jobs/{job_id}/results.ndjson")).text.splitlines()
        csv_text = (await client.get(f"/v1/jobs/{job_id}/results.csv")).text
        over_limit = await client.get(f"/v1/jobs/{job_id}/results", params={"limit": 1001})

    assert seen == list(range(250))
    assert pages == 3
    assert [json.loads(line)["output"] for line in ndjson] == items
    csv_rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert len(csv_rows) == 250
    assert json.loads(csv_rows[7]["output"]) == {"n": 7}
    assert over_limit.status_code == 422


async def test_a_retried_request_with_the_same_idempotency_key_creates_no_second_job(
    stack: Pipeline, stack_db: asyncpg.Pool
) -> None:
    request = {"kind": "bench.noop", "items": ["a", "b", "c"]}
    async with stack.client("idempotent-co") as client:
        first = await client.post("/v1/jobs", json=request, headers={"Idempotency-Key": "order-17"})
        second = await client.post("/v1/jobs", json=request, headers={"Idempotency-Key": "order-17"})
        different = await client.post(
            "/v1/jobs", json={**request, "items": ["x"]}, headers={"Idempotency-Key": "order-17"}
        )

    assert first.status_code == second.status_code == 202
    assert first.json()["job_id"] == second.json()["job_id"]
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert different.status_code == 422
    assert different.json()["error"]["field"] == "Idempotency-Key"
    assert await stack_db.fetchval("SELECT count(*) FROM jobs WHERE tenant = 'idempotent-co'") == 1


async def test_a_job_whose_items_all_fail_ends_failed_with_each_error_recorded(stack: Pipeline) -> None:
    async with stack.client() as client:
        response = await client.post(
            "/v1/jobs",
            json={
                "kind": "web.page",
                "items": ["http://127.0.0.1:1/nothing-listens-here"] * 3,
                "options": {"retry": {"max_attempts": 1}},
            },
        )
        final = await wait_for_status(client, response.json()["job_id"])
        results = (await client.get(f"/v1/jobs/{final['job_id']}/results")).json()["items"]

    assert final["status"] == "failed"
    assert final["counts"]["failed"] == 3
    assert all(item["status"] == "failed" and item["error"] for item in results)


async def test_cancelling_a_running_job_skips_its_remaining_batches_and_ends_it_cancelled(
    stack: Pipeline, stack_db: asyncpg.Pool
) -> None:
    slow = {"kind": "bench.cpu", "items": list(range(3000)), "options": {"rounds": 20000}}
    async with stack.client() as client:
        job_id = (await client.post("/v1/jobs", json=slow)).json()["job_id"]
        await wait_for_status(client, job_id, statuses={"running"})
        cancelled = await client.delete(f"/v1/jobs/{job_id}")
        final = await wait_for_status(client, job_id)

        async def every_item_has_a_row() -> int | None:
            count = await stack_db.fetchval("SELECT count(*) FROM item_results WHERE job_id = $1", job_id)
            return count if count == 3000 else None

        await eventually(every_item_has_a_row, timeout=120)
        settled = (await client.get(f"/v1/jobs/{job_id}")).json()

    assert cancelled.status_code == 202
    assert final["status"] == "cancelled"
    counts = settled["counts"]
    assert counts["cancelled"] > 0
    assert counts["succeeded"] + counts["failed"] + counts["cancelled"] == 3000
