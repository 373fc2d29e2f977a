"""The AsyncAPI document covers every topic Sluice creates, each with its message schemas."""

from shared.config import KafkaSettings
from shared.contracts import asyncapi_json, topic_contracts
from shared.kafka import topic_specs


def test_every_created_topic_has_a_contract_and_a_channel():
    settings = KafkaSettings(topic_prefix="acme")
    created = {spec.name for spec in topic_specs(settings)}
    document = asyncapi_json(settings)
    assert {contract.topic for contract in topic_contracts(settings)} == created
    assert {channel["address"] for channel in document["channels"].values()} == created


def test_typed_topics_carry_the_event_schemas_and_requests_are_what_sluice_receives():
    document = asyncapi_json(KafkaSettings())
    schemas = document["components"]["schemas"]
    for model in ("JobRequested", "TaskBatch", "BatchProcessed", "CancelJob", "JobCompleted", "JobProgressed"):
        assert model in schemas, model
    assert document["operations"]["job-requests"]["action"] == "receive"
    assert document["operations"]["results"]["action"] == "send"


def _service_subscriptions() -> dict[str, set[str]]:
    """Topic -> consumer groups, as the processor's and aggregator's own brokers subscribe (built, never
    started). Intake's one subscription, the requests topic, is its contract's ``receive`` operation."""
    from services.aggregator.app import build_app as aggregator_app
    from services.aggregator.settings import AggregatorSettings
    from services.processor.app import build_app as processor_app
    from services.processor.settings import ProcessorSettings

    subscriptions: dict[str, set[str]] = {}
    for app in (processor_app(ProcessorSettings()), aggregator_app(AggregatorSettings())):
        for subscriber in app.broker.subscribers:
            for topic in subscriber.topics:
                subscriptions.setdefault(topic.name, set()).add(subscriber.group_id)
    return subscriptions


def test_every_topic_a_service_consumes_has_a_contract_and_sluice_topics_knows_its_group():
    from services.ops.streams.groups import groups_by_topic

    settings = KafkaSettings()
    contracts = {contract.topic for contract in topic_contracts(settings)}
    known_groups = groups_by_topic(settings)
    subscriptions = _service_subscriptions()
    assert {settings.topics.tasks, settings.topics.results, settings.topics.tasks_dlq} <= subscriptions.keys()
    for topic, groups in subscriptions.items():
        assert topic in contracts, topic
        assert groups <= set(known_groups[topic]), f"{topic}: {groups} not in {known_groups[topic]}"
