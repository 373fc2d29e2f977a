"""Retries a user relies on: transient failures retried off the main topic, dead letters for what ends failed."""

import re
import uuid
from typing import Any

import asyncpg
import pytest
from aiokafka import ConsumerRecord

from shared.kinds.flaky import is_flaky
from sluice.contracts.events import TaskBatch, TaskItem
from sluice.contracts.topics import TopicNames
from tests.support.kafka import produce, read_until
from tests.support.pipeline import Pipeline, wait_for_status

pytestmark = pytest.mark.e2e

DLQ_HEADERS = {
    "x-sluice-reason",
    "x-sluice-error-type",
    "x-sluice-attempts",
    "x-sluice-first-failure-at",
    "x-sluice-last-failure-at",
    "x-sluice-trace-id",
    "x-sluice-source-topic",
    "x-sluice-kind",
    "x-sluice-job-id",
    "x-sluice-tenant",
}


@pytest.fixture(scope="module")
def stack_overrides() -> dict[str, str]:
    """Retry tiers of 1 and 2 s and a 1 s backoff base, so retries take seconds."""
    return {"SLUICE_KAFKA_RETRY_TIERS_S": "[1,2]", "SLUICE_PROCESSOR_RETRY_BASE_DELAY_S": "1"}


def _headers(record: ConsumerRecord) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


def _letters_of(job_id: str, count: int):
    def done(records: list[ConsumerRecord]) -> bool:
        return len([r for r in records if _headers(r).get("x-sluice-job-id") == job_id]) >= count

    return done


async def _rows(db: asyncpg.Pool, job_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT item_index, status, attempts, error FROM item_results WHERE job_id = $1 ORDER BY item_index", job_id
    )


async def _submit(stack: Pipeline, items: list[Any], options: dict[str, Any], kind: str = "bench.flaky") -> str:
    async with stack.client("acme") as client:
        response = await client.post("/v1/jobs", json={"kind": kind, "items": items, "options": options})
        assert response.status_code == 202, response.text
        return response.json()["job_id"]


async def test_items_that_fail_transiently_once_succeed_on_their_second_attempt_with_one_row_each(
    stack: Pipeline, stack_db: asyncpg.Pool
) -> None:
    salt = uuid.uuid4().hex
    items = [{"n": n, "salt": salt} for n in range(40)]
    flaky = {n for n, item in enumerate(items) if is_flaky(item, 0.5)}
    job_id = await _submit(stack, items, {"fail_rate": 0.5, "fail_times": 1})
    async with stack.client("acme") as client:
        final = await wait_for_status(client, job_id, timeout=60)

    rows = await _rows(stack_db, job_id)
    assert final["status"] == "completed", stack.logs()
    assert final["counts"]["succeeded"] == 40
    assert [row["item_index"] for row in rows] == list(range(40))
    assert {row["item_index"] for row in rows if row["attempts"] == 2} == flaky
    assert {row["attempts"] for row in rows} == {1, 2}
    assert all(row["status"] == "succeeded" for row in rows)


async def test_a_permanently_failing_item_fails_at_once_and_lands_on_the_tasks_dlq_with_every_header(
    stack: Pipeline, stack_db: asyncpg.Pool, kafka_address: str, stack_topics: TopicNames
) -> None:
    job_id = await _submit(stack, [{"bad": uuid.uuid4().hex}], {"fail_rate": 1.0, "permanent": True})
    async with stack.client("acme") as client:
        final = await wait_for_status(client, job_id, timeout=60)
    (letter,) = [
        r
        for r in await read_until(kafka_address, stack_topics.tasks_dlq, _letters_of(job_id, 1))
        if _headers(r)["x-sluice-job-id"] == job_id
    ]

    (row,) = await _rows(stack_db, job_id)
    assert final["status"] == "failed"
    assert (row["status"], row["attempts"], row["error"]) == ("failed", 1, "bench.flaky: permanent failure")
    headers = _headers(letter)
    assert set(headers) >= DLQ_HEADERS
    assert headers["x-sluice-reason"] == "bench.flaky: permanent failure"
    assert headers["x-sluice-error-type"] == "ItemFailed"
    assert headers["x-sluice-attempts"] == "1"
    assert headers["x-sluice-first-failure-at"] == headers["x-sluice-last-failure-at"]
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-sluice-trace-id"]), "the processing span's trace id"
    assert (headers["x-sluice-source-topic"], headers["x-sluice-kind"], headers["x-sluice-tenant"]) == (
        stack_topics.tasks,
        "bench.flaky",
        "acme",
    )
    assert letter.key == job_id.encode()
    batch = TaskBatch.model_validate_json(letter.value)
    assert (str(batch.job_id), batch.kind, batch.options) == (
        job_id,
        "bench.flaky",
        {"fail_rate": 1.0, "permanent": True},
    )
    assert [(item.index, item.attempt, item.generation) for item in batch.items] == [(0, 1, 0)]


async def test_an_item_that_never_recovers_fails_after_max_attempts_while_other_jobs_run_past_its_retries(
    stack: Pipeline, stack_db: asyncpg.Pool, kafka_address: str, stack_topics: TopicNames
) -> None:
    item = {"stuck": uuid.uuid4().hex}
    stuck = await _submit(stack, [item], {"fail_rate": 1.0, "fail_times": 99, "retry": {"max_attempts": 4}})
    async with stack.client("acme") as client:
        await read_until(
            kafka_address, stack_topics.retry(1), lambda rs: any(r.key.startswith(stuck.encode()) for r in rs)
        )
        quick = await _submit(stack, list(range(200)), {}, kind="bench.noop")
        quick_final = await wait_for_status(client, quick, timeout=60)
        stuck_meanwhile = (await client.get(f"/v1/jobs/{stuck}")).json()
        stuck_final = await wait_for_status(client, stuck, timeout=60)
    records = await read_until(kafka_address, stack_topics.tasks_dlq, _letters_of(stuck, 1))
    (letter,) = [r for r in records if _headers(r)["x-sluice-job-id"] == stuck]

    assert quick_final["status"] == "completed"
    assert stuck_meanwhile["counts"]["pending"] == 1, "the second job waited for the first one's retries"
    (row,) = await _rows(stack_db, stuck)
    assert stuck_final["status"] == "failed"
    assert (row["status"], row["attempts"]) == ("failed", 4)
    headers = _headers(letter)
    assert set(headers) >= DLQ_HEADERS
    assert headers["x-sluice-attempts"] == "4"
    assert headers["x-sluice-reason"] == "bench.flaky: planned transient failure 4 of 99"
    assert headers["x-sluice-first-failure-at"] < headers["x-sluice-last-failure-at"]
    assert headers["x-sluice-source-topic"].startswith(f"{stack_topics.prefix}.tasks.retry-")
    assert TaskBatch.model_validate_json(letter.value).items == [TaskItem(index=0, input=item)]


async def test_a_garbage_message_on_the_tasks_topic_is_dead_lettered_with_a_reason_and_the_next_batch_runs(
    stack: Pipeline, kafka_address: str, stack_topics: TopicNames
) -> None:
    garbage = b"{not a task batch " + uuid.uuid4().hex.encode()
    await produce(kafka_address, stack_topics.tasks, garbage, key=b"junk")
    job_id = await _submit(stack, [1, 2, 3], {}, kind="bench.noop")
    async with stack.client("acme") as client:
        final = await wait_for_status(client, job_id, timeout=60)
    records = await read_until(kafka_address, stack_topics.tasks_dlq, lambda rs: any(r.value == garbage for r in rs))

    (letter,) = [r for r in records if r.value == garbage]
    assert final["status"] == "completed"
    assert letter.key == b"junk"
    assert _headers(letter)["x-sluice-reason"].startswith("not a TaskBatch: ")
    assert _headers(letter)["x-sluice-source-topic"] == stack_topics.tasks
