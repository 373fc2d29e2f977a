"""Chaos: an undecodable message on every topic the services consume; each is set aside with a reason."""

import time

import pytest

from shared.kafka import REASON_HEADER
from tests.support.chaos import (
    Scale,
    ScenarioRecord,
    assert_completed_whole,
    audit_job,
    existing_topics,
    follow,
    read_topics_until,
    submit,
)
from tests.support.kafka import produce
from tests.support.pipeline import Pipeline

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]


async def test_a_poison_message_on_every_consumed_topic_is_set_aside_with_a_reason_and_the_job_completes(
    pipeline: Pipeline, kafka_address: str, scale: Scale, scenario: ScenarioRecord
) -> None:
    topics = pipeline.topics
    present = await existing_topics(kafka_address)
    retry_topics = sorted(topic for topic in present if topic.startswith(f"{topics.tasks}.retry-"))
    consumed = [topics.requests, topics.tasks, topics.tasks_high, topics.results, *retry_topics]
    poison = {topic: b'{"poison": "%s", "truncated' % topic.encode() for topic in consumed}
    async with pipeline.client() as client:
        for topic, value in poison.items():
            await produce(kafka_address, topic, value, key=b"poison")
        job_id = await submit(client, "bench.noop", scale.items)
        timeline = await follow(client, job_id, time.monotonic())

    set_aside = [topics.rejected, *(t for t in (topics.tasks_dlq, topics.results_dlq) if t in present)]
    records = await read_topics_until(
        kafka_address, set_aside, lambda seen: set(poison.values()) <= {record.value for record in seen}
    )
    reasons = {record.value: dict(record.headers).get(REASON_HEADER, b"") for record in records}
    audit = await audit_job(pipeline.database_url, timeline.final, scale.items)
    scenario.add(audit)
    assert all(reasons[value] for value in poison.values()), reasons
    assert_completed_whole(audit, pipeline)
