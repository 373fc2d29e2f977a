"""What a caller sees when a request is wrong or the broker is away: clear 4xx bodies, 503 with Retry-After."""

import httpx
import pytest

from tests.support.infra import SuiteBroker
from tests.support.pipeline import Pipeline
from tests.support.stack import FreshStacks

pytestmark = pytest.mark.e2e


@pytest.fixture(params=[("httptools", "uvloop"), ("h11", "asyncio")], ids=["httptools-uvloop", "h11-asyncio"])
async def intake(request: pytest.FixtureRequest, fresh_stack: FreshStacks) -> Pipeline:
    """Intake alone: it judges every request itself, so no processor or aggregator need run. Once per HTTP
    server setting (a stack of its own each): the fallback answers the same."""
    http, loop = request.param
    return await fresh_stack.start({"SLUICE_INTAKE_HTTP": http, "SLUICE_INTAKE_LOOP": loop}, ["intake"])


async def test_bad_requests_get_a_4xx_with_a_json_body_naming_the_problem(intake: Pipeline) -> None:
    ndjson = {"Content-Type": "application/x-ndjson"}
    async with intake.client() as client:
        unknown_kind = await client.post("/v1/jobs", json={"kind": "ocr.magic", "items": [1]})
        bad_url = await client.post("/v1/jobs", json={"kind": "web.page", "items": ["http://ok.example/", "ftp://x"]})
        no_items = await client.post("/v1/jobs", json={"kind": "bench.noop", "items": []})
        extra_field = await client.post("/v1/jobs", json={"kind": "bench.noop", "items": [1], "colour": "red"})
        not_json = await client.post("/v1/jobs", content=b"{", headers={"Content-Type": "application/json"})
        wrong_type = await client.post("/v1/jobs", content=b"kind=x", headers={"Content-Type": "text/plain"})
        bad_line = await client.post(
            "/v1/jobs", params={"kind": "web.page"}, content=b'"http://a.example/"\n\n{oops\n', headers=ndjson
        )
        bad_options = await client.post(
            "/v1/jobs", json={"kind": "bench.cpu", "items": [1], "options": {"rounds": "lots"}}
        )
        too_many = await client.post("/v1/jobs", json={"kind": "bench.noop", "items": list(range(10_001))})
        long_key = await client.post(
            "/v1/jobs", json={"kind": "bench.noop", "items": [1]}, headers={"Idempotency-Key": "k" * 256}
        )
        wrong_method = await client.put("/v1/jobs", json={"kind": "bench.noop", "items": [1]})
        missing = await client.get("/v1/jobs/8b0e4f6e-41f6-4d35-9a55-25c1b8f3a0c1")
        not_a_uuid = await client.get("/v1/jobs/42")

    def error(response: httpx.Response) -> dict[str, str]:
        return response.json()["error"]

    assert unknown_kind.status_code == 422 and error(unknown_kind)["field"] == "kind"
    assert "web.page" in error(unknown_kind)["message"]
    assert bad_url.status_code == 422 and error(bad_url)["field"] == "items[1]"
    assert no_items.status_code == 422 and error(no_items)["field"] == "items"
    assert extra_field.status_code == 422 and error(extra_field)["field"] == "colour"
    assert not_json.status_code == 422
    assert wrong_type.status_code == 415
    assert bad_line.status_code == 422 and error(bad_line)["field"] == "line 3"
    assert bad_options.status_code == 422 and error(bad_options)["field"] == "options"
    assert too_many.status_code == 413 and error(too_many)["field"] == "items"
    assert long_key.status_code == 422 and error(long_key) == {
        "code": "invalid_request", "message": "String should have at most 255 characters",
        "field": "header.Idempotency-Key",
    }  # fmt: skip
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["Allow"]
    assert missing.status_code == 404 and error(missing)["code"] == "not_found"
    assert not_a_uuid.status_code == 422


async def test_while_the_broker_is_unreachable_intake_answers_503_with_retry_after_and_never_202(
    own_broker: SuiteBroker, fresh_stack: FreshStacks
) -> None:
    overrides = {"KAFKA_BOOTSTRAP_SERVERS": own_broker.bootstrap, "SLUICE_INTAKE_PUBLISH_STALL_TIMEOUT_S": "2"}
    intake = await fresh_stack.start(overrides, ["intake"])
    async with intake.client() as client:
        with own_broker.paused():
            during = await client.post("/v1/jobs", json={"kind": "bench.noop", "items": list(range(200))})
        after = await client.post("/v1/jobs", json={"kind": "bench.noop", "items": [1]})

    assert during.status_code == 503, during.text
    assert during.headers["Retry-After"].isdigit()
    assert during.json()["error"]["field"] == "kafka"
    assert after.status_code == 202
