"""Which consumer group reads which Sluice topic, from the services' own settings (and so their env)."""

from services.aggregator.settings import AggregatorSettings
from services.intake.settings import IntakeSettings
from services.processor.settings import ProcessorSettings
from services.scheduler.settings import SchedulerSettings
from shared.config import KafkaSettings
from shared.kafka import retry_tiers


def groups_by_topic(kafka: KafkaSettings) -> dict[str, list[str]]:
    """Topic name -> the Sluice consumer groups reading it (intake's job-events readers have no group)."""
    topics = kafka.topics
    processor = ProcessorSettings().group_id
    aggregator = AggregatorSettings().group_id
    groups = {
        topics.requests: [IntakeSettings().requests_group_id],
        topics.tasks: [processor],
        topics.tasks_high: [f"{processor}-high"],
        topics.results: [aggregator],
        topics.job_events: [f"{aggregator}-webhooks"],
        topics.triggers: [SchedulerSettings().rescan.triggers_group_id],
        topics.rejected: [],
        topics.tasks_dlq: [f"{aggregator}-dlq"],
        topics.results_dlq: [f"{aggregator}-dlq"],
    }
    for tier in retry_tiers(kafka):
        groups[topics.retry(tier)] = [f"{processor}-retry-{tier}s"]
    return groups
