"""The live-progress hub against the real broker: a job's events reach its SSE clients, whatever else the
job-events topic carries."""

import asyncio
from uuid import uuid4

from services.intake.live.hub import JobEventHub
from shared.config import KafkaSettings
from shared.kafka import ensure_topics
from sluice.contracts.events import ItemsChanged, JobCounts, JobProgressed
from tests.support.kafka import produce
from tests.support.stack import unique_name


async def test_a_rescans_items_changed_event_does_not_stop_the_progress_that_follows(kafka_address: str) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka_address, topic_prefix=unique_name("t"), job_event_partitions=1)
    await ensure_topics(settings)
    hub = JobEventHub(settings, client_id="test-live-hub")
    await hub.start()
    job_id = uuid4()
    queue = hub.attach(job_id)
    try:
        changed = ItemsChanged(tenant="t", job_id=job_id, kind="web.page", changed=[0], unchanged=1)
        progress = JobProgressed(tenant="t", job_id=job_id, counts=JobCounts(total=4, succeeded=2), percent=50.0)
        for event in (changed, progress):
            await produce(kafka_address, settings.topics.job_events, event.model_dump_json().encode())
        received = await asyncio.wait_for(queue.get(), timeout=30)
    finally:
        await hub.stop()

    assert (received["type"], received["percent"]) == ("job.progress", 50.0)
