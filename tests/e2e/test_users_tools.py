"""A user's tools against the running pipeline: the SDK, the `sluice` CLI, the contracts intake serves,
the Kafka side of the SDK, and rebuilding the read model from the topics after losing the database.

One stack serves the module; each test uses its own tenant. Rebuilding drops the database: that test has a stack
of its own.
"""

import asyncio
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import asyncpg
import httpx
import pytest

from sluice.cli.__main__ import main
from sluice.client import AsyncSluiceClient, JobRequestPublisher, JobView, SluiceClient, job_events_consumer
from sluice.contracts.events import JobCompleted
from tests.support.kafka import committed_offset
from tests.support.pipeline import Pipeline
from tests.support.poll import eventually
from tests.support.stack import FreshStacks

pytestmark = pytest.mark.e2e

FLAKY_FOREVER = {"fail_rate": 0.5, "permanent": True}
"""bench.flaky options under which about half the items fail for good (which ones is fixed by their hash)."""


def _tenant() -> str:
    return f"tools-{uuid4().hex[:8]}"


def _sync_twin(client: httpx.AsyncClient) -> httpx.Client:
    """A blocking client with the same address and authentication as the pipeline's own."""
    return httpx.Client(base_url=client.base_url, headers=client.headers, timeout=60)


def _credentials(stack: Pipeline, tenant: str) -> list[str]:
    """The tenant's API key as a `sluice` flag."""
    return ["--api-key", stack.api_key(tenant)]


def _connection(stack: Pipeline, tenant: str) -> list[str]:
    env = stack.env
    return [
        "--url", stack.url, "--kafka", env["KAFKA_BOOTSTRAP_SERVERS"], "--topic-prefix",
        env["SLUICE_KAFKA_TOPIC_PREFIX"], "--database-url", env["DATABASE_URL"], *_credentials(stack, tenant),
    ]  # fmt: skip


async def _sluice(stack: Pipeline, tenant: str, *args: str) -> subprocess.CompletedProcess:
    """Run `sluice ARGS` in this process (in a thread, as it blocks), answering like subprocess.run."""

    def run() -> subprocess.CompletedProcess:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*args, *_connection(stack, tenant)])
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())

    return await asyncio.to_thread(run)


async def _sluice_process(stack: Pipeline, tenant: str, *args: str, stdin: str) -> subprocess.CompletedProcess:
    """Run `sluice ARGS` as its own process, as a user's shell would."""
    command = [sys.executable, "-m", "sluice.cli", *args, *_connection(stack, tenant)]
    env = {**os.environ, "SLUICE_CONFIG": "/nonexistent/sluice.toml"}
    return await asyncio.to_thread(
        subprocess.run, command, env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


async def test_sdk_streams_a_lazy_submission_watches_progress_and_reads_every_result_across_pages(stack: Pipeline):
    seen: list[JobView] = []
    async with AsyncSluiceClient(http=stack.client(_tenant())) as sluice:
        accepted = await sluice.submit("bench.noop", ({"n": n} for n in range(120)))
        final = await sluice.wait(accepted.job_id, on_progress=seen.append, poll_interval_s=0.1, timeout_s=60)
        results = [result async for result in sluice.iter_results(accepted.job_id, page_size=50)]
        exported = io.BytesIO()
        await sluice.export(accepted.job_id, exported, "jsonl")

    assert accepted.total_items == 120
    assert final.status.value == "completed" and final.counts.succeeded == 120
    assert seen[-1] == final and all(view.job_id == final.job_id for view in seen)
    assert [result.index for result in results] == list(range(120))
    assert [result.output for result in results] == [{"n": n} for n in range(120)]
    assert [json.loads(line)["index"] for line in exported.getvalue().splitlines()] == list(range(120))


async def test_sync_client_submits_a_list_lists_pages_of_jobs_and_exports_csv(stack: Pipeline):
    tenant = _tenant()

    def use_the_sync_client() -> tuple[list[str], list[str], list[str], bytes]:
        with _sync_twin(stack.client(tenant)) as http, SluiceClient(http=http) as sluice:
            ids = [str(sluice.submit("bench.noop", [f"item-{job}-{i}" for i in range(3)]).job_id) for job in range(3)]
            for job_id in ids:
                sluice.wait(job_id, poll_interval_s=0.1, timeout_s=60)
            first = sluice.list_jobs(limit=2)
            second = sluice.list_jobs(limit=2, cursor=first.next_cursor)
            exported = io.BytesIO()
            sluice.export(ids[0], exported, "csv")
        listed = [str(view.job_id) for view in first.jobs], [str(view.job_id) for view in second.jobs]
        return ids, *listed, exported.getvalue()

    ids, first_page, second_page, exported = await asyncio.to_thread(use_the_sync_client)
    with _sync_twin(stack.client(_tenant())) as http, SluiceClient(http=http) as stranger:
        others = await asyncio.to_thread(stranger.list_jobs)

    assert first_page + second_page == list(reversed(ids))
    assert others.jobs == [] and others.next_cursor is None
    rows = list(csv.DictReader(io.StringIO(exported.decode())))
    assert [(row["item_index"], row["status"]) for row in rows] == [
        ("0", "succeeded"),
        ("1", "succeeded"),
        ("2", "succeeded"),
    ]


async def test_job_list_answers_a_bad_cursor_or_status_with_a_4xx_naming_the_field(stack: Pipeline):
    async with stack.client(_tenant()) as client:
        bad_cursor = await client.get("/v1/jobs", params={"cursor": "not-a-cursor"})
        bad_status = await client.get("/v1/jobs", params={"status": "sleeping"})

    assert bad_cursor.status_code == 400 and bad_cursor.json()["error"]["field"] == "cursor"
    assert bad_status.status_code == 422 and bad_status.json()["error"]["field"] == "status"


async def test_cli_submits_a_file_watches_it_exports_it_and_reruns_only_its_failures(stack: Pipeline, tmp_path: Path):
    tenant = _tenant()
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"n": n}) + "\n" for n in range(40)))
    options = json.dumps(FLAKY_FOREVER)

    submitted = await _sluice(
        stack, tenant, "submit", "bench.flaky", str(items), "--options", options, "--watch", "--json"
    )
    final = json.loads(submitted.stdout)
    exported = tmp_path / "results.csv"
    results = await _sluice(stack, tenant, "results", final["job_id"], "--format", "csv", "-o", str(exported))
    rerun = await _sluice(stack, tenant, "jobs", "rerun", final["job_id"], "--failed-only", "--watch", "--json")
    listed = await _sluice(stack, tenant, "jobs", "list", "--json")

    assert submitted.returncode == 1, submitted.stderr  # partially failed: not a success for a script
    assert final["status"] == "partially_failed"
    failed = final["counts"]["failed"]
    assert 0 < failed < 40
    assert results.returncode == 0, results.stderr
    rows = list(csv.DictReader(exported.open()))
    assert len(rows) == 40
    failed_inputs = sorted(json.loads(row["input"])["n"] for row in rows if row["status"] == "failed")
    second = json.loads(rerun.stdout)
    assert second["counts"]["total"] == failed == len(failed_inputs)
    assert second["options"] == FLAKY_FOREVER and second["kind"] == "bench.flaky"
    assert second["counts"]["failed"] == failed  # the same items fail again: the failure is in the data
    assert [job["job_id"] for job in json.loads(listed.stdout)["jobs"]] == [second["job_id"], final["job_id"]]


async def test_cli_errors_from_intake_are_one_line_without_a_traceback(stack: Pipeline):
    bad_kind = await _sluice_process(stack, _tenant(), "submit", "no.such.kind", "-", stdin="a\nb\n")

    assert bad_kind.returncode == 2
    assert bad_kind.stderr.startswith("sluice: intake answered 422 invalid_request: unknown kind 'no.such.kind'")
    assert "Traceback" not in bad_kind.stderr


async def test_cli_topics_shows_every_topic_and_no_lag_once_the_work_is_done(stack: Pipeline, monkeypatch):
    tenant = _tenant()
    for variable in ("SLUICE_PROCESSOR_GROUP_ID", "SLUICE_AGGREGATOR_GROUP_ID", "SLUICE_INTAKE_REQUESTS_GROUP_ID"):
        monkeypatch.setenv(variable, stack.env[variable])  # the groups are named as the services name them
    async with AsyncSluiceClient(http=stack.client(tenant)) as sluice:
        accepted = await sluice.submit("bench.noop", list(range(30)))
        await sluice.wait(accepted.job_id, poll_interval_s=0.1, timeout_s=60)
    prefix = stack.env["SLUICE_KAFKA_TOPIC_PREFIX"]

    async def settled() -> dict | None:
        answer = await _sluice(stack, tenant, "topics", "--json")
        assert answer.returncode == 0, answer.stderr
        report = {entry["topic"]: entry for entry in json.loads(answer.stdout)}
        lags = [report[f"{prefix}.{name}"]["groups"] for name in ("tasks", "results")]
        return report if all(info["lag"] == 0 for groups in lags for info in groups.values()) else None

    report = await eventually(settled, timeout=30, interval=0.5)
    tasks = report[f"{prefix}.tasks"]
    assert tasks["partitions"] == 4 and tasks["written"] >= 1
    assert list(tasks["groups"]) == [stack.env["SLUICE_PROCESSOR_GROUP_ID"]]
    assert list(report[f"{prefix}.results"]["groups"]) == [stack.env["SLUICE_AGGREGATOR_GROUP_ID"]]


async def test_intake_serves_the_asyncapi_document_and_openapi(stack: Pipeline):
    prefix = stack.env["SLUICE_KAFKA_TOPIC_PREFIX"]
    async with stack.client() as client:
        asyncapi = (await client.get("/asyncapi")).json()
        html = await client.get("/asyncapi.html")
        docs = await client.get("/docs")
        openapi = (await client.get("/openapi.json")).json()

    addresses = {channel["address"] for channel in asyncapi["channels"].values()}
    assert {f"{prefix}.job-requests", f"{prefix}.tasks", f"{prefix}.results", f"{prefix}.job-events"} <= addresses
    assert "BatchProcessed" in asyncapi["components"]["schemas"]
    assert html.status_code == 200 and "AsyncAPI" in html.text
    assert docs.status_code == 200
    assert {"get", "post"} <= set(openapi["paths"]["/v1/jobs"])


async def test_kafka_side_requests_a_job_and_consumes_its_completion_committing_after_handling(
    stack: Pipeline, kafka_address: str
):
    prefix = stack.env["SLUICE_KAFKA_TOPIC_PREFIX"]
    group = f"downstream-{uuid4().hex[:8]}"
    async with JobRequestPublisher(kafka_address, topic_prefix=prefix) as publisher:
        request = await publisher.request("bench.noop", ["a", "b", "c"], tenant=_tenant())

    completions: list[JobCompleted] = []

    async def on_event(event: object) -> None:
        if isinstance(event, JobCompleted) and event.job_id == request.job_id:
            completions.append(event)

    async with job_events_consumer(kafka_address, group, topic_prefix=prefix) as consumer:
        async with asyncio.timeout(60):
            while not completions:
                await consumer.run(on_event, max_events=consumer.handled + 1)

    assert completions[0].counts.succeeded == 3
    committed = {p: await committed_offset(kafka_address, group, f"{prefix}.job-events", p) for p in range(6)}
    assert sum(offset or 0 for offset in committed.values()) == consumer.handled


_JOB_COLUMNS = (
    "job_id, tenant, kind, priority, options, status, total_items, total_batches, succeeded, failed, cancelled, "
    "timed_out, error"
)
_RESULT_COLUMNS = "job_id, item_index, status, input, output, error, error_type, attempts, duration_ms, generation"


async def _read_model(pool: asyncpg.Pool) -> tuple[list[dict], list[dict]]:
    jobs = await pool.fetch(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY job_id")
    results = await pool.fetch(f"SELECT {_RESULT_COLUMNS} FROM item_results ORDER BY job_id, item_index")
    return [dict(row) for row in jobs], [dict(row) for row in results]


async def test_rebuild_after_losing_the_whole_schema_restores_every_row_and_the_pipeline_goes_on(
    fresh_stack: FreshStacks,
):
    """On a stack of its own: it drops the whole schema, and compares every job and result in the database."""
    stack = await fresh_stack.start()
    db = await fresh_stack.db(stack)
    tenant = _tenant()
    async with AsyncSluiceClient(http=stack.client(tenant)) as sluice:
        failing = await sluice.submit("bench.flaky", [{"n": n} for n in range(30)], options=FLAKY_FOREVER)
        slow = await sluice.submit("bench.flaky", list(range(20)), options={"fail_rate": 1.0, "fail_times": 3})
        await sluice.cancel(slow.job_id)
        done = await sluice.submit("bench.noop", ["one", "two"])
        await sluice.wait(failing.job_id, poll_interval_s=0.1, timeout_s=60)
        await sluice.wait(done.job_id, poll_interval_s=0.1, timeout_s=60)

        async def every_item_has_its_row() -> bool | None:
            missing = await db.fetchval(
                """SELECT count(*) FROM jobs j WHERE j.total_items >
                       (SELECT count(*) FROM item_results r WHERE r.job_id = j.job_id) OR j.finished_at IS NULL"""
            )
            return True if missing == 0 else None

        await eventually(every_item_has_its_row, timeout=60, interval=0.2)
        before = await _read_model(db)
        await db.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")

        rebuilt = await _sluice(stack, tenant, "rebuild", "--json")
        after = await _read_model(db)
    # Tenants and keys are on no topic: the operator creates them again (or restores them from a backup).
    stack.forget_keys()
    async with AsyncSluiceClient(http=stack.client(tenant)) as sluice:
        later = await sluice.submit("bench.noop", ["after", "the", "rebuild"])
        later_final = await sluice.wait(later.job_id, poll_interval_s=0.1, timeout_s=60)

    assert rebuilt.returncode == 0, rebuilt.stderr
    report = json.loads(rebuilt.stdout)
    assert report["jobs_created"] == len(before[0])
    assert report["results_restored"] == len(before[1])
    assert {job["status"] for job in before[0]} >= {"completed", "partially_failed", "cancelled"}
    assert after == before
    assert later_final.status.value == "completed"
