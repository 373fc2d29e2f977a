"""Delivery guarantees a user relies on: bad events set aside, redelivery harmless, crashes lose nothing."""

import signal
import uuid

import asyncpg
import pytest

from shared.config import TopicNames
from shared.events import BatchProcessed, ItemResult, ItemStatus, JobRequested
from shared.kafka import REASON_HEADER
from tests.support.kafka import committed_offset, produce, read_until
from tests.support.pipeline import Pipeline, wait_for_status
from tests.support.poll import eventually

pytestmark = pytest.mark.e2e


async def test_a_malformed_job_request_lands_in_the_rejected_topic_and_the_next_valid_one_runs(
    pipeline: Pipeline, kafka_address: str, topic_prefix: str
) -> None:
    topics = TopicNames.for_prefix(topic_prefix)
    valid = JobRequested(tenant="acme", job_id=uuid.uuid4(), kind="bench.noop", items=[1, 2, 3])
    unknown_kind = JobRequested(tenant="acme", job_id=uuid.uuid4(), kind="no.such.kind", items=[1])
    await produce(kafka_address, topics.requests, b"{not json", key=b"same")
    await produce(kafka_address, topics.requests, unknown_kind.model_dump_json().encode(), key=b"same")
    await produce(kafka_address, topics.requests, valid.model_dump_json().encode(), key=b"same")

    rejected = await read_until(kafka_address, topics.rejected, lambda records: len(records) >= 2)
    async with pipeline.client("acme") as client:
        final = await wait_for_status(client, valid.job_id)

    reasons = [dict(record.headers)[REASON_HEADER].decode() for record in rejected]
    assert [record.value for record in rejected][0] == b"{not json"
    assert "not a JobRequested event" in reasons[0]
    assert "unknown kind 'no.such.kind'" in reasons[1]
    assert final["status"] == "completed"
    assert final["counts"]["succeeded"] == 3


async def test_results_redelivered_to_the_aggregator_make_no_duplicate_rows_and_no_double_counts(
    pipeline: Pipeline, kafka_address: str, topic_prefix: str, service_env: dict[str, str], db: asyncpg.Pool
) -> None:
    topics = TopicNames.for_prefix(topic_prefix)
    async with pipeline.client() as client:
        job_id = (await client.post("/v1/jobs", json={"kind": "bench.noop", "items": list(range(120))})).json()[
            "job_id"
        ]
        before = await wait_for_status(client, job_id)
        rows = await db.fetch("SELECT item_index, input FROM item_results WHERE job_id = $1 ORDER BY 1", job_id)
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
            await produce(kafka_address, topics.results, replay.model_dump_json().encode(), key=job_id.encode())
            for _ in range(3)
        ]
        last = sent[-1]

        async def aggregator_committed_past_the_replays() -> int | None:
            group = service_env["SLUICE_AGGREGATOR_GROUP_ID"]
            offset = await committed_offset(kafka_address, group, topics.results, last.partition)
            return offset if offset is not None and offset > last.offset else None

        await eventually(aggregator_committed_past_the_replays, timeout=60)
        after = (await client.get(f"/v1/jobs/{job_id}")).json()

    assert after["counts"] == before["counts"] == {
        "total": 120, "succeeded": 120, "failed": 0, "cancelled": 0, "timed_out": 0, "pending": 0
    }  # fmt: skip
    assert await db.fetchval("SELECT count(*) FROM item_results WHERE job_id = $1", job_id) == 120
    assert await db.fetchval("SELECT count(*) FROM item_results WHERE status <> 'succeeded'") == 0


async def test_an_aggregator_killed_mid_job_and_restarted_loses_nothing_and_counts_each_item_once(
    pipeline: Pipeline, db: asyncpg.Pool
) -> None:
    total = 30_000
    async with pipeline.client() as client:
        response = await client.post(
            "/v1/jobs",
            params={"kind": "bench.noop"},
            content=b"".join(b'{"n": %d}\n' % n for n in range(total)),
            headers={"Content-Type": "application/x-ndjson"},
        )
        job_id = response.json()["job_id"]

        async def partly_written() -> int | None:
            done = (await client.get(f"/v1/jobs/{job_id}")).json()["counts"]["succeeded"]
            return done if 0 < done < total else None

        await eventually(partly_written, timeout=60, interval=0.02)
        pipeline.kill("aggregator", signal.SIGKILL)
        pipeline.start_service("aggregator")
        final = await wait_for_status(client, job_id, timeout=180)

    assert final["status"] == "completed", pipeline.logs()
    assert final["counts"]["succeeded"] == total
    assert await db.fetchval("SELECT count(*) FROM item_results WHERE job_id = $1", job_id) == total


async def test_a_processor_killed_mid_job_hands_its_partitions_to_a_survivor_and_the_job_completes(
    pipeline: Pipeline, db: asyncpg.Pool
) -> None:
    survivor = pipeline.start_service("processor")
    total = 4000
    job = {"kind": "bench.cpu", "items": list(range(total)), "options": {"rounds": 3000}}
    async with pipeline.client() as client:
        job_id = (await client.post("/v1/jobs", json=job)).json()["job_id"]
        await wait_for_status(client, job_id, statuses={"running"})
        pipeline.kill("processor", signal.SIGKILL)
        final = await wait_for_status(client, job_id, timeout=240)

    assert survivor in pipeline.supervisor.pids()
    assert final["status"] == "completed", pipeline.logs()
    assert final["counts"]["succeeded"] == total
    assert await db.fetchval("SELECT count(*) FROM item_results WHERE job_id = $1", job_id) == total
