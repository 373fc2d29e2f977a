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
