"""Delivery guarantees a user relies on: bad events set aside, redelivery harmless.

Crashes losing nothing (a processor or the aggregator killed mid-job) are tests/chaos/test_crashes.py, which
also audit every item for loss and duplicates."""

import uuid

import asyncpg
import pytest
from aiokafka import ConsumerRecord

from shared.kafka import REASON_HEADER
from sluice.contracts.events import BatchProcessed, ItemResult, ItemStatus, JobRequested
from sluice.contracts.topics import TopicNames
from tests.support.kafka import committed_offset, produce, read_until
from tests.support.pipeline import Pipeline, wait_for_status
from tests.support.poll import eventually

pytestmark = pytest.mark.e2e


async def test_a_malformed_job_request_lands_in_the_rejected_topic_and_the_next_valid_one_runs(
    stack: Pipeline, kafka_address: str, stack_topics: TopicNames
) -> None:
    key = uuid.uuid4().bytes  # one key: one partition, so the requests are read in the order sent
    valid = JobRequested(tenant="acme", job_id=uuid.uuid4(), kind="bench.noop", items=[1, 2, 3])
    unknown_kind = JobRequested(tenant="acme", job_id=uuid.uuid4(), kind="no.such.kind", items=[1])
    await produce(kafka_address, stack_topics.requests, b"{not json", key=key)
    await produce(kafka_address, stack_topics.requests, unknown_kind.model_dump_json().encode(), key=key)
    await produce(kafka_address, stack_topics.requests, valid.model_dump_json().encode(), key=key)

    def ours(records: list[ConsumerRecord]) -> list[ConsumerRecord]:
        return [record for record in records if record.key == key]

    rejected = ours(await read_until(kafka_address, stack_topics.rejected, lambda records: len(ours(records)) >= 2))
    async with stack.client("acme") as client:
        final = await wait_for_status(client, valid.job_id)

    reasons = [dict(record.headers)[REASON_HEADER].decode() for record in rejected]
    assert [record.value for record in rejected][0] == b"{not json"
    assert "not a JobRequested event" in reasons[0]
    assert "unknown kind 'no.such.kind'" in reasons[1]
    assert final["status"] == "completed"
    assert final["counts"]["succeeded"] == 3


async def test_results_redelivered_to_the_aggregator_make_no_duplicate_rows_and_no_double_counts(
    stack: Pipeline, kafka_address: str, stack_topics: TopicNames, stack_db: asyncpg.Pool
) -> None:
    async with stack.client() as client:
        job_id = (await client.post("/v1/jobs", json={"kind": "bench.noop", "items": list(range(120))})).json()[
            "job_id"
        ]
        before = await wait_for_status(client, job_id)
        rows = await stack_db.fetch("SELECT item_index, input FROM item_results WHERE job_id = $1 ORDER BY 1", job_id)
        replay = BatchProcessed(
            tenant="default",
            job_id=job_id,
            kind="bench.noop",
            batch_index=0,
            results=[
                ItemResult(index=row["item_index"], status=ItemStatus.FAILED, input=row["input"], error="replayed")
                for row in rows[:50]
            ],
        )
        sent = [
            await produce(kafka_address, stack_topics.results, replay.model_dump_json().encode(), key=job_id.encode())
            for _ in range(3)
        ]
        last = sent[-1]

        async def aggregator_committed_past_the_replays() -> int | None:
            group = stack.env["SLUICE_AGGREGATOR_GROUP_ID"]
            offset = await committed_offset(kafka_address, group, stack_topics.results, last.partition)
            return offset if offset is not None and offset > last.offset else None

        await eventually(aggregator_committed_past_the_replays, timeout=60)
        after = (await client.get(f"/v1/jobs/{job_id}")).json()

    assert after["counts"] == before["counts"] == {
        "total": 120, "succeeded": 120, "failed": 0, "cancelled": 0, "timed_out": 0, "pending": 0
    }  # fmt: skip
    stored = await stack_db.fetch("SELECT status FROM item_results WHERE job_id = $1", job_id)
    assert [row["status"] for row in stored] == ["succeeded"] * 120
