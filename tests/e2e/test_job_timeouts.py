"""A job that outlives options.job_timeout_s is ended by the scheduler: one row per item, and its lifecycle event."""

import json
from datetime import datetime, timedelta

import asyncpg
import pytest
from aiokafka import ConsumerRecord

from sluice.contracts.topics import TopicNames
from tests.support.kafka import committed_offset, read_until
from tests.support.pipeline import Pipeline, wait_for_status
from tests.support.poll import eventually
from tests.support.stack import DATA_PATH

pytestmark = pytest.mark.e2e

ITEMS = 6
ROUNDS = 1_500_000
"""About half a second of chained SHA-256 per item here: some items finish within the 2 s timeout, not all."""


@pytest.fixture(scope="module")
def stack_overrides() -> dict[str, str]:
    """One item per batch (each result is written as soon as it is done) and a sweep every half second."""
    return {"SLUICE_INTAKE_BATCH_SIZE": "1", "SLUICE_SCHEDULER_SWEEP_INTERVAL_S": "0.5"}


@pytest.fixture(scope="module")
def stack_services() -> tuple[str, ...]:
    """The data path and the scheduler, which ends jobs past their deadline."""
    return (*DATA_PATH, "scheduler")


async def test_a_job_past_its_timeout_ends_with_a_timed_out_row_for_each_unfinished_item_and_is_announced(
    stack: Pipeline, stack_db: asyncpg.Pool, kafka_address: str, stack_topics: TopicNames
) -> None:
    async with stack.client() as client:
        warm_up = await client.post("/v1/jobs", json={"kind": "bench.noop", "items": [0]})
        await wait_for_status(client, warm_up.json()["job_id"], timeout=45)  # the processor has joined its group
        options = {"rounds": ROUNDS, "job_timeout_s": 2}
        response = await client.post(
            "/v1/jobs", json={"kind": "bench.cpu", "items": list(range(ITEMS)), "options": options}
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]

        ended = await wait_for_status(client, job_id, timeout=15)

    assert ended["status"] in {"failed", "partially_failed"}, stack.logs()
    created = datetime.fromisoformat(ended["created_at"])
    assert datetime.fromisoformat(ended["deadline_at"]) == created + timedelta(seconds=2)
    assert datetime.fromisoformat(ended["finished_at"]) >= created + timedelta(seconds=2)
    assert ended["stalled"] is False
    rows = await _rows(stack_db, job_id)
    assert sorted(rows) == list(range(ITEMS))
    timed_out = [index for index, (status, _) in rows.items() if status == "timed_out"]
    succeeded = [index for index, (status, _) in rows.items() if status == "succeeded"]
    assert len(timed_out) + len(succeeded) == ITEMS and timed_out, rows
    assert {rows[index][1] for index in timed_out} == {"job timed out after 2 s"}
    counts = ended["counts"]
    assert (counts["total"], counts["succeeded"], counts["cancelled"], counts["pending"]) == (
        ITEMS,
        len(succeeded),
        0,
        0,
    )
    assert _unfinished(counts) == len(timed_out)
    assert ended["status"] == ("failed" if not succeeded else "partially_failed")
    assert ended["error"] == f"timed out after 2 s: {len(timed_out)} items unfinished"

    def lifecycle_seen(records: list[ConsumerRecord]) -> bool:
        return any(json.loads(r.value)["type"] != "job.progress" for r in records if r.key == job_id.encode())

    events = await read_until(kafka_address, stack_topics.job_events, lifecycle_seen)
    (event,) = [e for r in events if r.key == job_id.encode() if (e := json.loads(r.value))["type"] != "job.progress"]
    assert event["type"] == ("job.failed" if ended["status"] == "failed" else "job.completed")
    assert _unfinished(event["counts"]) == len(timed_out)

    # The processor still delivers every item's result, late; once the aggregator has consumed them, nothing changed.
    def all_results_seen(records: list[ConsumerRecord]) -> bool:
        return sum(len(json.loads(r.value)["results"]) for r in records if r.key == job_id.encode()) >= ITEMS

    results = await read_until(kafka_address, stack_topics.results, all_results_seen)
    late = [r for r in results if r.key == job_id.encode()]

    async def aggregator_consumed_them() -> bool | None:
        for record in late:
            offset = await committed_offset(
                kafka_address, stack.env["SLUICE_AGGREGATOR_GROUP_ID"], stack_topics.results, record.partition
            )
            if offset is None or offset <= record.offset:
                return None
        return True

    await eventually(aggregator_consumed_them, timeout=30)
    assert await _rows(stack_db, job_id) == rows
    async with stack.client() as client:
        assert (await client.get(f"/v1/jobs/{job_id}")).json()["counts"] == counts


async def _rows(db: asyncpg.Pool, job_id: str) -> dict[int, tuple[str, str | None]]:
    records = await db.fetch("SELECT item_index, status, error FROM item_results WHERE job_id = $1", job_id)
    return {row["item_index"]: (row["status"], row["error"]) for row in records}


def _unfinished(counts: dict[str, int]) -> int:
    """Timed-out items, which count apart from failed ones."""
    assert counts["failed"] == 0, counts
    return counts["timed_out"]
