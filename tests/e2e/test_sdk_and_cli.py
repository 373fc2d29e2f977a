"""The SDK and the `sluice` command against the real stack: following a job over its live event stream, retries
that honour a real 429's Retry-After and a submit accepted once, keyset listing and dead letters, and the CLI's
output and exit codes in a pipe, on Ctrl-C and with intake gone; `sluice status` and `sluice events tail`.

One stack serves the module (processor /metrics on, for the dashboard's lag); each test uses its own tenant.
"""

import asyncio
import contextlib
import io
import json
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from itertools import count
from typing import Any

import asyncpg
import httpx
import pytest

from services.ops.devstack.ports import free_port
from services.ops.devstack.testsite import TestSite, serving_test_site
from sluice.cli.__main__ import main
from sluice.client import AsyncSluiceClient, JobView, SluiceClient
from sluice.contracts.headers import IDEMPOTENCY_KEY
from tests.support.pipeline import Pipeline
from tests.support.poll import eventually
from tests.support.tenants import issue_key
from tests.unit.client.scripted_intake import Reply, ScriptedIntake, Seen

pytestmark = pytest.mark.e2e

PERMANENT_FAILURE = {"fail_rate": 1.0, "permanent": True}
CLI_ENV = {**os.environ, "SLUICE_CONFIG": "/nonexistent/sluice.toml"}


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def stack_overrides(metrics_port: int) -> dict[str, str]:
    """Batches of two, two at a time (progress comes in steps); the processor's /metrics, which the dashboard
    scrapes for consumer lag."""
    return {
        "SLUICE_INTAKE_BATCH_SIZE": "2",
        "SLUICE_PROCESSOR_MAX_IN_FLIGHT": "2",
        "SLUICE_PROCESSOR_METRICS_PORT": str(metrics_port),
        "SLUICE_INTAKE_DASHBOARD_METRICS_URLS": json.dumps([f"http://127.0.0.1:{metrics_port}/metrics"]),
    }


@pytest.fixture(scope="module")
def site() -> Iterator[TestSite]:
    with serving_test_site(pages=10) as running:
        yield running


def _tenant() -> str:
    return f"sdk-{uuid.uuid4().hex[:8]}"


def _slow(site: TestSite, count: int, ms: int = 200) -> list[str]:
    return [site.url(f"/slow?ms={ms}&n={n}&r={uuid.uuid4().hex[:6]}") for n in range(count)]


def _connection(stack: Pipeline, tenant: str) -> list[str]:
    env = stack.env
    return [
        "--url", stack.url, "--api-key", stack.api_key(tenant), "--kafka", env["KAFKA_BOOTSTRAP_SERVERS"],
        "--topic-prefix", env["SLUICE_KAFKA_TOPIC_PREFIX"],
    ]  # fmt: skip


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sluice.cli", *args, env=CLI_ENV,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _finish(process: asyncio.subprocess.Process, stdin: bytes | None = None) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=120)
    return process.returncode if process.returncode is not None else -1, out.decode(), err.decode()


async def _sluice_in_process(*args: str) -> tuple[int, str, str]:
    def run() -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
        return code, out.getvalue(), err.getvalue()

    return await asyncio.to_thread(run)


async def test_wait_follows_the_live_event_stream_to_the_end_of_a_real_job(stack: Pipeline, site: TestSite) -> None:
    tenant, paths = _tenant(), []

    async def record(request: httpx.Request) -> None:
        paths.append((request.method, request.url.path))

    http = stack.client(tenant)
    http.event_hooks["request"] = [record]
    seen: list[JobView] = []
    async with AsyncSluiceClient(http=http) as sluice:
        accepted = await sluice.submit("web.page", _slow(site, 8))
        final = await sluice.wait(accepted.job_id, on_progress=seen.append, timeout_s=120)
    job = f"/v1/jobs/{accepted.job_id}"

    assert final.status.value == "completed" and final.counts.succeeded == 8 and final.finished_at is not None
    assert seen[-1] == final and len(seen) >= 2
    assert [view.counts.done for view in seen] == sorted(view.counts.done for view in seen)
    assert ("GET", f"{job}/events") in paths
    assert paths.count(("GET", job)) == 1  # the final status: nothing was polled

    def sync_wait() -> JobView:
        with httpx.Client(base_url=stack.url, headers=http.headers, timeout=60) as blocking:
            with SluiceClient(http=blocking) as sync:
                return sync.wait(sync.submit("bench.noop", ["x", "y"]).job_id, timeout_s=120)

    assert (await asyncio.to_thread(sync_wait)).counts.succeeded == 2


async def test_the_sdk_lists_every_job_page_by_page_and_lists_shows_and_redrives_dead_letters(
    stack: Pipeline,
) -> None:
    async with AsyncSluiceClient(http=stack.client(_tenant())) as sluice:
        submitted = [(await sluice.submit("bench.noop", [f"job-{n}"])).job_id for n in range(3)]
        failing = await sluice.submit("bench.flaky", [{"dead": n} for n in range(2)], options=PERMANENT_FAILURE)
        await sluice.wait(failing.job_id, timeout_s=120)
        listed = [str(view.job_id) async for view in sluice.iter_jobs(page_size=2)]
        noop_only = [str(view.job_id) async for view in sluice.iter_jobs(kind="bench.noop", page_size=2)]

        async def both_letters() -> list[Any] | None:
            letters = [letter async for letter in sluice.iter_dead_letters(job_id=failing.job_id, page_size=1)]
            return letters if len(letters) == 2 else None

        letters = await eventually(both_letters, timeout=60)
        shown = await sluice.dead_letter(letters[0].id)
        redriven = await sluice.redrive_dead_letters(job_id=failing.job_id)

    assert listed == [failing.job_id, *reversed(submitted)]
    assert noop_only == list(reversed(submitted))
    assert sorted(letter.item_index for letter in letters) == [0, 1]
    assert shown.payload is not None and shown.job_id is not None and str(shown.job_id) == failing.job_id
    assert redriven == 2


async def test_watch_into_a_pipe_prints_plain_lines_without_carriage_returns(stack: Pipeline, site: TestSite) -> None:
    process = await _spawn("submit", "web.page", "-", "--watch", *_connection(stack, _tenant()))
    code, out, err = await _finish(process, "\n".join(_slow(site, 6)).encode())
    lines = out.splitlines()

    assert code == 0, err
    assert "\r" not in out and "\r" not in err
    assert lines[0].startswith("job ") and lines[0].endswith("accepted: 6 items")
    job_id = lines[0].split()[1]
    assert all(line.startswith(f"job {job_id} ") for line in lines[1:])
    assert lines[-1] == f"job {job_id} completed: 6 ok, 0 failed, 0 timed out, 0 cancelled"


async def test_ctrl_c_during_a_watch_exits_130_without_a_traceback(stack: Pipeline, site: TestSite) -> None:
    tenant = _tenant()
    async with AsyncSluiceClient(http=stack.client(tenant)) as sluice:
        slow = await sluice.submit("web.page", _slow(site, 8, ms=5000))
        process = await _spawn("jobs", "show", slow.job_id, "--watch", *_connection(stack, tenant))
        try:
            first = await asyncio.wait_for(process.stdout.readline(), timeout=60)  # type: ignore[union-attr]
            process.send_signal(signal.SIGINT)
            code, out, err = await _finish(process)
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await sluice.cancel(slow.job_id)

    assert first.decode().startswith(f"job {slow.job_id} ")
    assert code == 130, err
    assert "Traceback" not in err and "\r" not in out


async def test_an_unreachable_intake_exits_3_with_one_line() -> None:
    port = free_port()  # nothing listens there
    process = await _spawn("jobs", "list", "--url", f"http://127.0.0.1:{port}", "--api-key", "sk_any")
    code, out, err = await _finish(process)

    assert code == 3
    assert err.startswith(f"sluice: cannot reach intake at http://127.0.0.1:{port}") and err.count("\n") == 1
    assert out == ""


async def test_a_429_from_a_tight_plan_is_retried_after_retry_after_and_the_job_is_accepted_once(
    stack: Pipeline, stack_db: asyncpg.Pool
) -> None:
    tenant = _tenant()
    key = await issue_key(stack.database_url, tenant, {"requests_per_minute": 10})
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=stack.url, headers=auth, timeout=30) as raw:

        async def refused() -> httpx.Response | None:
            answer = await raw.get("/v1/admin/dlq")
            return answer if answer.status_code == 429 else None

        await eventually(refused, timeout=60, interval=0.01)  # the plan's burst is spent
    answers: list[tuple[int, str, str | None]] = []

    def recorded(response: httpx.Response) -> None:
        response.read()
        code = response.json().get("error", {}).get("code", "") if response.is_error else ""
        answers.append((response.status_code, response.request.headers[IDEMPOTENCY_KEY], code))

    def submit() -> str:
        hooks = {"response": [recorded]}
        with httpx.Client(base_url=stack.url, headers=auth, timeout=60, event_hooks=hooks) as http:
            with SluiceClient(http=http) as sluice:
                return sluice.submit("bench.noop", ["once"]).job_id

    job_id = await asyncio.to_thread(submit)
    jobs = await stack_db.fetch("SELECT job_id FROM jobs WHERE tenant = $1", tenant)

    assert [(status, code) for status, _, code in answers] == [(429, "rate_limited"), (202, "")]
    assert answers[0][1] == answers[1][1]  # one Idempotency-Key for both tries
    assert [str(row["job_id"]) for row in jobs] == [job_id]


async def test_a_submit_whose_answer_was_lost_is_retried_with_its_key_and_accepted_once(
    stack: Pipeline, stack_db: asyncpg.Pool
) -> None:
    tenant = _tenant()
    upstream_answers: list[httpx.Response] = []
    posts = count()
    upstream = httpx.Client(base_url=stack.url, timeout=60)

    def gateway(seen: Seen) -> Reply:
        """Forwards to intake; the answer to the first submission is lost on the way back (a 503 instead)."""
        headers = {name: seen.headers[name] for name in ("authorization", "content-type", "idempotency-key")}
        answer = upstream.request(seen.method, seen.path, headers=headers, content=seen.body)
        upstream_answers.append(answer)
        if seen.method == "POST" and next(posts) == 0:
            return Reply(503, {"error": {"code": "bad_gateway", "message": "upstream timed out"}}, {"Retry-After": "0"})
        return Reply(answer.status_code, answer.json())

    with upstream, ScriptedIntake(gateway).running() as proxy:
        with SluiceClient(proxy.url, api_key=stack.api_key(tenant)) as sluice:
            accepted = await asyncio.to_thread(sluice.submit, "bench.noop", ["only", "once"])
    jobs = await stack_db.fetch("SELECT job_id FROM jobs WHERE tenant = $1", tenant)

    assert [answer.status_code for answer in upstream_answers] == [202, 202]
    assert upstream_answers[0].json()["job_id"] == upstream_answers[1].json()["job_id"] == accepted.job_id
    assert upstream_answers[1].headers["Idempotent-Replayed"] == "true"
    assert [str(row["job_id"]) for row in jobs] == [accepted.job_id]


async def test_sluice_status_shows_the_stack_ready_with_backlog_lag_and_dead_letters(stack: Pipeline) -> None:
    tenant = _tenant()
    async with AsyncSluiceClient(http=stack.client(tenant)) as sluice:
        failing = await sluice.submit("bench.flaky", [{"status": 1}], options=PERMANENT_FAILURE)
        await sluice.wait(failing.job_id, timeout_s=120)

    async def reported() -> dict[str, Any] | None:
        code, out, err = await _sluice_in_process("status", "--json", *_connection(stack, tenant))
        assert code == 0, err
        report = json.loads(out)
        lagging = [row for row in report["lag"] if row.get("group") == stack.env["SLUICE_PROCESSOR_GROUP_ID"]]
        return report if lagging and report["dead_letters"] else None

    report = await eventually(reported, timeout=60, interval=0.5)
    code, text, _ = await _sluice_in_process("status", *_connection(stack, tenant))

    assert report["ready"] is True and report["checks"] == {"postgres": "ok", "kafka": "ok", "redis": "ok"}
    assert {"queued_batches", "in_flight_batches", "queued", "in_flight"} <= set(report["backlog"])
    assert report["dead_letters"][0]["job_id"] == failing.job_id
    assert code == 0 and f"intake        {stack.url}  ready" in text
    assert f"lag           {stack.env['SLUICE_PROCESSOR_GROUP_ID']} on " in text


async def test_sluice_events_tail_follows_a_tenants_job_events_live_and_from_the_beginning(stack: Pipeline) -> None:
    tenant = _tenant()
    tail = await _spawn("events", "tail", "--json", "--tenant", tenant, *_connection(stack, tenant))
    try:
        following = await asyncio.wait_for(tail.stderr.readline(), timeout=60)  # type: ignore[union-attr]
        async with AsyncSluiceClient(http=stack.client(tenant)) as sluice:
            job_id = (await sluice.submit("bench.noop", ["a", "b", "c"])).job_id
        events = []
        while not events or events[-1]["type"] != "job.completed":
            line = await asyncio.wait_for(tail.stdout.readline(), timeout=60)  # type: ignore[union-attr]
            if not line:
                rest = await tail.stderr.read()  # type: ignore[union-attr]
                pytest.fail(f"sluice events tail ended: {following.decode()}{rest.decode()[-3000:]}")
            events.append(json.loads(line))
        tail.send_signal(signal.SIGINT)
        code, _, err = await _finish(tail)
    finally:
        with contextlib.suppress(ProcessLookupError):
            tail.kill()
    replay = await _spawn(
        "events", "tail", "--from-beginning", "--job", job_id, "--max", "1", *_connection(stack, tenant)
    )
    replayed, replayed_out, replayed_err = await _finish(replay)

    assert following.decode().startswith(f"following {stack.env['SLUICE_KAFKA_TOPIC_PREFIX']}.job-events ")
    assert {event["job_id"] for event in events} == {job_id} and {event["tenant"] for event in events} == {tenant}
    assert events[-1]["counts"]["succeeded"] == 3
    assert code == 130 and "Traceback" not in err
    assert replayed == 0, replayed_err
    assert f" job {job_id} tenant {tenant} " in replayed_out and replayed_out.count("\n") == 1
