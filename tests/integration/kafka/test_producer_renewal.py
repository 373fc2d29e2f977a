"""A producer whose state the brokers lost (as after a whole-cluster stop) is replaced, and publishing goes on.

Only where the broker grants producer ids (Apache Kafka): elsewhere producers keep no sequence to lose."""

import pytest
from aiokafka import TopicPartition
from opentelemetry.sdk.trace import TracerProvider

from shared.compat import connection_options, raw_producer
from shared.config import KafkaSettings
from shared.errors import BrokerUnavailable
from shared.kafka import SendWindow, ensure_topics, make_broker
from tests.support.kafka import read_until

pytestmark = pytest.mark.kafka


async def test_a_producer_the_brokers_no_longer_know_is_replaced_and_the_next_send_is_written_once(
    kafka_address: str, topic_prefix: str
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_address, topic_prefix=topic_prefix)
    await ensure_topics(kafka)
    topic = kafka.topics.results
    broker = make_broker(kafka, client_id="test-renewal", tracer_provider=TracerProvider())
    await broker.connect()
    try:
        if not connection_options(broker)["enable_idempotence"]:
            pytest.skip("the broker grants no producer ids: there is no producer state to lose")
        window = SendWindow(broker, 16, stall_timeout_s=10)
        await window.send(b"first", topic, partition=0)
        await window.flush()
        lost = raw_producer(broker)
        # What a broker that lost its log's tail sees: the producer's next batch is ahead of the sequence it knows.
        lost._txn_manager.increment_sequence_number(TopicPartition(topic, 0), 7)
        with pytest.raises(BrokerUnavailable, match="OutOfOrderSequenceNumber"):
            await window.send(b"lost", topic, partition=0)
            await window.flush()
        renewed = raw_producer(broker)
        await window.send(b"after", topic, partition=0)
        await window.flush()
    finally:
        await broker.stop()

    records = await read_until(kafka_address, topic, lambda got: len(got) >= 2)
    assert renewed is not lost
    assert [record.value for record in records] == [b"first", b"after"]
