"""Topic creation at start-up, against the real broker."""

from aiokafka.admin import AIOKafkaAdminClient

from shared.config import KafkaSettings
from shared.kafka import ensure_topics


async def _partition_counts(address: str, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {topic["topic"]: len(topic["partitions"]) for topic in described}


async def test_every_topic_is_created_with_its_configured_partitions_and_a_second_start_changes_nothing(
    kafka_address: str, topic_prefix: str
) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka_address, topic_prefix=topic_prefix, rejected_partitions=2)
    topics = settings.topics
    names = [topics.requests, topics.tasks, topics.results, topics.job_events, topics.rejected]

    await ensure_topics(settings)
    await ensure_topics(settings)

    assert await _partition_counts(kafka_address, names) == {
        topics.requests: 6,
        topics.tasks: 12,
        topics.results: 12,
        topics.job_events: 6,
        topics.rejected: 2,
    }
