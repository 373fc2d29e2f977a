"""Tenants against the real stack: keys, 401s, isolation on every endpoint, the rate limit, `sluice tenants`."""

import asyncio
import json
import os
import sys
import uuid
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.ops.devstack.ports import free_port
from shared.kafka import REASON_HEADER
from sluice.contracts.events import JobRequested
from tests.support.kafka import produce, read_until
from tests.support.pipeline import Pipeline, wait_for_status
from tests.support.poll import eventually
from tests.support.tenants import issue_key, tenant_store

pytestmark = [pytest.mark.e2e, pytest.mark.fairness]

SOME_JOB = "00000000-0000-4000-8000-000000000000"
TENANT_ROUTES = (
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs/{job}"),
    ("DELETE", "/v1/jobs/{job}"),
    ("GET", "/v1/jobs/{job}/results"),
    ("GET", "/v1/jobs/{job}/results.ndjson"),
    ("GET", "/v1/jobs/{job}/results.csv"),
    ("GET", "/v1/admin/dlq"),
    ("GET", "/v1/admin/dlq/1"),
    ("POST", "/v1/admin/dlq/redrive"),
)


@pytest.fixture(scope="module")
def stack_overrides() -> dict[str, str]:
    """Plans re-read at once."""
    return {"SLUICE_TENANCY_PLAN_CACHE_TTL_S": "0"}


@pytest.fixture(scope="module")
def replica_url(stack: Pipeline) -> str:
    """A second intake replica of the module's stack, on its own port (the test waits for it to be ready)."""
    port = free_port()
    stack.start_service("intake", {"SLUICE_INTAKE_PORT": str(port)})
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
async def owned_job(stack: Pipeline) -> dict[str, Any]:
    """A finished job of tenant `owner` with one dead letter: what another tenant must never see."""
    async with stack.client("owner") as client:
        items = [{"secret": "owner-only-1"}, {"secret": "owner-only-2"}]
        submitted = await client.post(
            "/v1/jobs", json={"kind": "bench.flaky", "items": items, "options": {"fail_rate": 1, "permanent": True}}
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["job_id"]
        await wait_for_status(client, job_id, timeout=60)

        async def dead_letters() -> list[dict[str, Any]] | None:
            listed = (await client.get("/v1/admin/dlq", params={"job_id": job_id})).json()["dead_letters"]
            return listed if len(listed) == len(items) else None

        letters = await eventually(dead_letters, timeout=30)
    return {"job_id": job_id, "letter_ids": [letter["id"] for letter in letters]}


def _anonymous(stack: Pipeline, authorization: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": authorization} if authorization else {}
    return httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=30)


async def _request(client: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
    body = {"job_id": SOME_JOB} if path.endswith("redrive") else None
    if method == "POST" and body is None:
        body = {"kind": "bench.noop", "items": [1]}
    return await client.request(method, path, json=body)


async def test_every_tenant_route_answers_401_with_a_bearer_challenge_without_a_working_key(stack: Pipeline) -> None:
    async with tenant_store(stack.database_url) as store:
        revoked = (await store.create("revoked-co")).token
        await store.revoke("revoked-co")
    unknown = "sk_" + "0" * 12 + "_" + "x" * 43
    answers = []
    for authorization in (None, "Bearer junk", f"Bearer {unknown}", f"Bearer {revoked}", f"Basic {revoked}"):
        async with _anonymous(stack, authorization) as client:
            for method, path in TENANT_ROUTES:
                answers.append((authorization, method, await _request(client, method, path.format(job=SOME_JOB))))
        async with _anonymous(stack, authorization) as client:
            open_routes = [await client.get(path) for path in ("/healthz", "/readyz", "/openapi.json", "/docs")]

    assert all(answer.status_code == 401 for _, _, answer in answers), [
        (auth, method, answer.status_code) for auth, method, answer in answers if answer.status_code != 401
    ]
    assert all(answer.headers["WWW-Authenticate"].startswith("Bearer") for _, _, answer in answers)
    assert {answer.json()["error"]["code"] for _, _, answer in answers} == {"unauthenticated"}
    assert [answer.status_code for answer in open_routes] == [200, 200, 200, 200]


async def test_another_tenants_job_results_exports_cancel_and_dead_letters_answer_404_or_nothing(
    stack: Pipeline, owned_job: dict[str, Any]
) -> None:
    job_id, letter_ids = owned_job["job_id"], owned_job["letter_ids"]
    async with stack.client("intruder") as intruder:
        job_answers = [
            await intruder.request(method, path.format(job=job_id)) for method, path in TENANT_ROUTES if "{job}" in path
        ]
        letters = [await intruder.get(f"/v1/admin/dlq/{letter_id}") for letter_id in letter_ids]
        listed = await intruder.get("/v1/admin/dlq", params={"job_id": job_id})
        redriven = await intruder.post("/v1/admin/dlq/redrive", json={"job_id": job_id})
        redriven_by_id = await intruder.post("/v1/admin/dlq/redrive", json={"ids": letter_ids})
    async with stack.client("owner") as owner:
        still_owned = (await owner.get(f"/v1/jobs/{job_id}")).json()
        owner_letters = (await owner.get("/v1/admin/dlq", params={"job_id": job_id})).json()["dead_letters"]

    assert [answer.status_code for answer in job_answers + letters] == [404] * (len(job_answers) + len(letters))
    assert not any("owner-only" in answer.text for answer in [*job_answers, *letters, listed])
    assert listed.json()["dead_letters"] == []
    assert (redriven.json(), redriven_by_id.json()) == ({"redriven": 0}, {"redriven": 0})
    assert still_owned["status"] == "failed" and still_owned["cancel_requested_at"] is None
    assert [letter["redriven_at"] for letter in owner_letters] == [None, None]


async def test_over_its_request_rate_a_tenant_gets_429_with_retry_after_on_any_intake_replica(
    stack: Pipeline, replica_url: str
) -> None:
    slow_key = await issue_key(stack.database_url, "slow-co", {"requests_per_minute": 3})

    async def replica_ready() -> bool | None:
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{replica_url}/readyz")).status_code == 200 or None
        except httpx.HTTPError:
            return None

    await eventually(replica_ready, timeout=60)
    answers = []
    for n in range(4):
        async with httpx.AsyncClient(
            base_url=replica_url if n % 2 else stack.url, headers={"Authorization": f"Bearer {slow_key}"}
        ) as client:
            answers.append(await client.get("/v1/admin/dlq"))
    async with stack.client("fast-co") as other:
        unaffected = await other.get("/v1/admin/dlq")

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert [answer.headers["RateLimit-Remaining"] for answer in answers] == ["2", "1", "0", "0"]
    assert all(answer.headers["RateLimit-Limit"] == "3" for answer in answers)
    refused = answers[-1]
    assert refused.headers["Retry-After"].isdigit() and 1 <= int(refused.headers["Retry-After"]) <= 20
    assert refused.json()["error"] == {
        "code": "rate_limited", "message": refused.json()["error"]["message"], "field": "requests_per_minute"
    }  # fmt: skip
    assert "requests_per_minute of 3" in refused.json()["error"]["message"]
    assert unaffected.status_code == 200 and int(unaffected.headers["RateLimit-Remaining"]) > 0


async def _sluice(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sluice.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "DATABASE_URL": env["DATABASE_URL"]},
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, stdout.decode(), stderr.decode()


async def test_sluice_tenants_creates_a_key_whose_rotation_and_revocation_take_effect_and_sets_plan_limits(
    stack: Pipeline,
) -> None:
    def as_key(key: str) -> httpx.AsyncClient:
        return _anonymous(stack, f"Bearer {key}")

    code, out, err = await _sluice(stack.env, "tenants", "create", "cli-co", "--json")
    assert code == 0, err
    first_key = json.loads(out)["api_key"]
    again = await _sluice(stack.env, "tenants", "create", "cli-co")
    limits = await _sluice(
        stack.env, "tenants", "set-plan", "cli-co", "--limit", "max_items_per_job=3", "--limit", "max_batch_size=2"
    )
    async with as_key(first_key) as client:
        within = await client.post("/v1/jobs", json={"kind": "bench.noop", "items": [1, 2, 3]})
        over = await client.post("/v1/jobs", json={"kind": "bench.noop", "items": [1, 2, 3, 4]})
        streamed_over = await client.post(
            "/v1/jobs",
            params={"kind": "bench.noop"},
            content=b"1\n2\n3\n4\n",
            headers={"content-type": "application/x-ndjson"},
        )
    rotated = await _sluice(stack.env, "tenants", "rotate", "cli-co", "--json")
    second_key = json.loads(rotated[1])["api_key"]
    async with as_key(first_key) as old, as_key(second_key) as new:
        after_rotation = (await old.get("/v1/admin/dlq"), await new.get("/v1/admin/dlq"))
    revoked = await _sluice(stack.env, "tenants", "revoke", "cli-co", "--json")
    async with as_key(second_key) as new:
        after_revocation = await new.get("/v1/admin/dlq")
    listed = await _sluice(stack.env, "tenants", "list", "--json")

    assert again[0] == 2 and again[2] == "sluice: tenant 'cli-co' already exists\n"
    assert limits[0] == 0 and "max_items_per_job      3  (own)" in limits[1], limits
    assert (within.status_code, within.json()["total_batches"]) == (202, 2)
    assert over.status_code == 413 and over.json()["error"]["field"] == "items"
    assert "max_items_per_job of 3" in over.json()["error"]["message"]
    assert streamed_over.status_code == 413 and "max_items_per_job of 3" in streamed_over.json()["error"]["message"]
    assert [answer.status_code for answer in after_rotation] == [401, 200]
    assert revoked[0] == 0 and json.loads(revoked[1])["revoked"] == [second_key.split("_")[1]]
    assert after_revocation.status_code == 401
    entry = next(tenant for tenant in json.loads(listed[1]) if tenant["name"] == "cli-co")
    assert entry["active_key_ids"] == [] and entry["limits"]["max_batch_size"] == 2
    assert first_key not in listed[1] and second_key not in listed[1]


SCHEMA_CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)


def _fuzz(base_url: str, authorization: str | None, max_examples: int, fixed_job_id: str | None = None) -> list[Any]:
    """Schemathesis over intake's own OpenAPI; every response must pass SCHEMA_CHECKS. Returns the responses."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    headers = {"Authorization": authorization} if authorization else {}
    responses: list[Any] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        has_job_id = any(parameter.name == "job_id" for parameter in operation.path_parameters)
        if fixed_job_id and not has_job_id:
            continue
        strategy = operation.as_strategy(path_parameters={"job_id": fixed_job_id} if fixed_job_id else None)

        @hypothesis.settings(
            max_examples=max_examples, deadline=None, database=None, derandomize=True,
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )  # fmt: skip
        @hypothesis.given(case=strategy)
        def call(case: schemathesis.Case) -> None:
            response = case.call(base_url=base_url, headers=headers, timeout=30)
            responses.append((case.method, case.path, response))
            case.validate_response(response, checks=list(SCHEMA_CHECKS))

        call()
    return responses


async def test_schemathesis_finds_no_5xx_no_off_schema_answer_and_no_other_tenants_data(
    stack: Pipeline, owned_job: dict[str, Any]
) -> None:
    job_id = owned_job["job_id"]
    intruder = f"Bearer {stack.api_key('fuzzer')}"

    with_key = await asyncio.to_thread(_fuzz, stack.url, intruder, 8)
    at_owned_job = await asyncio.to_thread(_fuzz, stack.url, intruder, 3, job_id)
    without_key = await asyncio.to_thread(_fuzz, stack.url, None, 3)
    wrong_key = await asyncio.to_thread(_fuzz, stack.url, "Bearer sk_000000000000_" + "y" * 43, 3)

    open_paths = {"/healthz", "/readyz", "/asyncapi", "/asyncapi.html"}
    assert {status for _, path, r in with_key if path not in open_paths for status in [r.status_code]} - {
        200, 201, 202, 204, 400, 404, 413, 415, 422
    } == set()  # fmt: skip
    # The owner's job answers exactly as a job that does not exist: nothing tells the intruder it is there.
    unknown = {"error": {"code": "not_found", "message": f"job {job_id} not found", "field": None}}
    assert [(r.status_code, r.json()) for _, _, r in at_owned_job] == [(404, unknown)] * len(at_owned_job)
    for answers in (without_key, wrong_key):
        assert {r.status_code for _, path, r in answers if path not in open_paths} == {401}
    everything = with_key + at_owned_job + without_key + wrong_key
    assert not [(m, p) for m, p, r in everything if "owner-only" in r.text]
    assert not [(m, p) for m, p, r in with_key + without_key + wrong_key if job_id in r.text]


async def test_input_postgres_cannot_store_is_a_422_naming_the_field_not_a_500(stack: Pipeline) -> None:
    """Found by the schemathesis run: NUL characters and ids beyond bigint used to reach PostgreSQL."""
    async with stack.client("careless") as client:
        answers = [
            await client.get("/v1/admin/dlq", params={"kind": "a\x00b"}),
            await client.get("/v1/admin/dlq", params={"error": "\x00"}),
            await client.post("/v1/admin/dlq/redrive", json={"error": "\u0000"}),
            await client.post("/v1/admin/dlq/redrive", json={"ids": [2**70]}),
            await client.get(f"/v1/admin/dlq/{2**70}"),
        ]

    assert [answer.status_code for answer in answers] == [422] * len(answers)
    assert [answer.json()["error"]["field"] for answer in answers] == ["kind", "error", "error", "ids.0", "letter_id"]


async def test_kafka_job_requests_follow_the_tenants_plan_limits_and_batch_size(
    stack: Pipeline, kafka_address: str
) -> None:
    topics = stack.topics
    await issue_key(stack.database_url, "kafka-co", {"max_items_per_job": 3, "max_batch_size": 2})
    too_big = JobRequested(tenant="kafka-co", job_id=uuid.uuid4(), kind="bench.noop", items=[1, 2, 3, 4])
    within = JobRequested(tenant="kafka-co", job_id=uuid.uuid4(), kind="bench.noop", items=[1, 2, 3])
    for request in (too_big, within):
        await produce(
            kafka_address, topics.requests, request.model_dump_json().encode(), key=str(request.job_id).encode()
        )

    rejected = await read_until(
        kafka_address, topics.rejected, lambda records: any(r.key == str(too_big.job_id).encode() for r in records)
    )
    async with stack.client("kafka-co") as client:
        final = await wait_for_status(client, within.job_id, timeout=60, appearing=True)  # its own partition
    job_prefix = str(within.job_id).encode()
    tasks = await read_until(
        kafka_address, topics.tasks, lambda records: sum(r.key.startswith(job_prefix) for r in records) >= 2
    )
    batch_sizes = sorted(len(json.loads(r.value)["items"]) for r in tasks if r.key.startswith(job_prefix))

    reason = next(dict(r.headers)[REASON_HEADER].decode() for r in rejected if r.key == str(too_big.job_id).encode())
    assert reason == "items is 4, over the plan's max_items_per_job of 3"
    assert (final["status"], final["counts"]["succeeded"]) == ("completed", 3)
    assert batch_sizes == [1, 2]
