"""A SASL_SSL cluster: SCRAM users, ACLs, and how aiokafka, FastStream and Sluice's start-up fail when refused."""

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import GroupAuthorizationFailedError, KafkaConnectionError, TopicAuthorizationFailedError
from faststream import AckPolicy
from opentelemetry.sdk.trace import TracerProvider

from services.ops.devstack.errors import KafkaToolFailed
from services.ops.devstack.kafka import KafkaCluster, KafkaSecurity, running_kafka
from shared.config import KafkaSettings
from shared.kafka import ensure_topics, make_broker
from sluice.client.kafka_auth import KafkaRefused
from tests.integration.devstack.kafka.clients import consume_one, create_topic, produce, read_partition, unique
from tests.support.kafka_required import kafka_tools

pytestmark = pytest.mark.kafka

USERS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}


@pytest.fixture(scope="module")
def secured(kafka_jars: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    data_dir = tmp_path_factory.mktemp("secured") / "kafka"
    with kafka_tools(), running_kafka(data_dir, security=KafkaSecurity(USERS)) as cluster:  # openssl: certificates
        yield cluster


def as_user(cluster: KafkaCluster, user: str, **extra: Any) -> dict[str, Any]:
    return cluster.client_options(user, USERS[user], **extra)


def settings_as(cluster: KafkaCluster, user: str, password: str) -> KafkaSettings:
    """Sluice's Kafka settings for `user` on the secured cluster, as a service reads them from its environment."""
    return KafkaSettings(
        bootstrap_servers=cluster.bootstrap,
        topic_prefix=unique("secured"),
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=user,
        sasl_password=password,
        ssl_cafile=cluster.access.ca_file,
    )


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256"])
async def test_a_user_granted_write_and_read_produces_and_consumes(secured: KafkaCluster, mechanism: str) -> None:
    topic = await create_topic(secured, unique("alice"))
    await asyncio.to_thread(secured.grant, "User:alice", ["Write", "Read"], topics=[topic])
    values = [b"one", b"two", b"three"]
    await produce(as_user(secured, "alice", sasl_mechanism=mechanism), topic, values, acks="all")
    assert await read_partition(as_user(secured, "alice", sasl_mechanism=mechanism), topic, 3) == values


async def test_write_on_a_and_read_on_b_allow_exactly_that(secured: KafkaCluster) -> None:
    topic_a, topic_b, topic_c = [await create_topic(secured, unique(name)) for name in ("a", "b", "c")]
    group = unique("bob-group")
    await asyncio.to_thread(secured.grant, "User:bob", ["Write"], topics=[topic_a])
    await asyncio.to_thread(secured.grant, "User:bob", ["Read"], topics=[topic_b])
    await asyncio.to_thread(secured.grant, "User:bob", ["Read"], groups=[group])
    await produce(secured.client_options(), topic_b, [b"for bob"])
    bob = as_user(secured, "bob")

    await produce(bob, topic_a, [b"allowed"])
    with pytest.raises(TopicAuthorizationFailedError) as refused:
        await produce(bob, topic_c, [b"refused"])
    assert str(refused.value) == f"[Error 29] TopicAuthorizationFailedError: {topic_c}"
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(bob, topic_b, [b"read-only topic"])
    assert await read_partition(bob, topic_b, 1) == [b"for bob"]
    with pytest.raises(GroupAuthorizationFailedError):
        await consume_one(bob, topic_b, unique("other-group"))
    assert await consume_one(bob, topic_b, group) == b"for bob"


async def test_a_wrong_password_fails_start_with_a_connection_error_whose_reason_is_only_logged(
    secured: KafkaCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="aiokafka")  # whatever level an earlier test left aiokafka's logger at
    producer = AIOKafkaProducer(**secured.client_options("bob", "not-his-password"))
    with pytest.raises(KafkaConnectionError):
        async with asyncio.timeout(30):  # a refusal, not a retry loop
            await producer.start()
    await producer.stop()
    assert "SaslAuthenticationFailed: Authentication failed during authentication due to invalid credentials" in (
        caplog.text
    )


async def test_a_plaintext_client_on_the_sasl_ssl_listener_is_refused(secured: KafkaCluster) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=secured.bootstrap)
    with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
        async with asyncio.timeout(30):  # a refusal, not a retry loop
            await producer.start()
    await producer.stop()


def test_a_grant_naming_no_such_operation_fails_with_the_tools_message(secured: KafkaCluster) -> None:
    with pytest.raises(KafkaToolFailed, match="exited with code"):
        secured.grant("User:bob", ["Fly"], topics=["anything"])


async def test_a_sluice_broker_publishes_and_subscribes_over_sasl_ssl(secured: KafkaCluster) -> None:
    topic, group = await create_topic(secured, unique("faststream")), unique("fs-group")
    await asyncio.to_thread(secured.grant, "User:carol", ["Write", "Read"], topics=[topic])
    await asyncio.to_thread(secured.grant, "User:carol", ["Read"], groups=[group])
    settings = settings_as(secured, "carol", USERS["carol"])
    broker = make_broker(settings, client_id="test-sasl", tracer_provider=TracerProvider())
    received: asyncio.Queue[str] = asyncio.Queue()

    @broker.subscriber(topic, group_id=group, auto_offset_reset="earliest", ack_policy=AckPolicy.NACK_ON_ERROR)
    async def on_greeting(body: str) -> None:
        await received.put(body)

    await broker.start()
    try:
        await broker.publish("hello over SASL_SSL", topic)
        assert await asyncio.wait_for(received.get(), timeout=30) == "hello over SASL_SSL"
    finally:
        await broker.stop()


async def test_a_wrong_password_stops_a_services_start_with_the_brokers_reason(secured: KafkaCluster) -> None:
    settings = settings_as(secured, "carol", "wrong")
    with pytest.raises(KafkaRefused) as refused:
        await ensure_topics(settings)
    assert str(refused.value).startswith(
        f"Kafka at {secured.bootstrap} (SASL_SSL, SCRAM-SHA-512 as 'carol') refused the connection: "
    )
    assert "invalid credentials" in str(refused.value)
    broker = make_broker(settings, client_id="test-sasl-refused", tracer_provider=TracerProvider())
    with pytest.raises(KafkaConnectionError):
        await broker.start()
    await broker.stop()
