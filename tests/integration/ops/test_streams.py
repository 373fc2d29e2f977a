"""Operator tools against the real broker: end offsets, lag, replay by job and by time, group rewind.

The broker batches records here (linger), which is where Tansu's ListOffsets answers go wrong: these
tests pin that our end offsets and time lookups are right anyway.
"""

import asyncio
import json
import time
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.ops.streams.errors import OpsError
from services.ops.streams.positions import committed_offsets, end_offsets, lag_by_partition, running
from services.ops.streams.reader import read_records
from services.ops.streams.replay import replay
from services.ops.streams.rewind import offsets_at_time, rewind_group
from services.ops.streams.selection import Selection
from sluice.client.kafka_auth import KafkaConnection
from sluice.contracts.headers import REPLAYED_FROM_HEADER

PARTITIONS = 2


async def _create(address: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names])
    finally:
        await admin.close()


async def _produce(address: str, topic: str, keys: list[bytes], count: int) -> list[tuple[int, int, int]]:
    """``count`` messages round-robin over ``keys`` and both partitions, sent in batches; (partition, offset, ts)."""
    producer = AIOKafkaProducer(bootstrap_servers=address, acks="all", linger_ms=20)
    async with running(producer):  # type: ignore[arg-type]
        futures = [
            await producer.send(topic, f"m{n}".encode(), key=keys[n % len(keys)], partition=n % PARTITIONS)
            for n in range(count)
        ]
        metadata = [await future for future in futures]
    return [(m.partition, m.offset, m.timestamp) for m in metadata]


def _wait_for_next_millisecond(after_ms: int) -> None:
    while time.time() * 1000 <= after_ms:  # the clock, not another process: spins for at most a millisecond
        pass


@pytest.fixture
def topic() -> str:
    return f"ops-{uuid4().hex[:10]}"


async def test_end_offsets_and_lag_match_what_was_written_and_committed(kafka_address, topic):
    kafka = KafkaConnection(bootstrap_servers=kafka_address)
    await _create(kafka_address, topic)
    written = await _produce(kafka_address, topic, [b"a", b"b"], 130)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    group = f"g-{uuid4().hex[:8]}"
    committer = AIOKafkaConsumer(bootstrap_servers=kafka_address, group_id=group, enable_auto_commit=False)
    async with running(committer):
        committer.assign(partitions)
        await committer.commit({partitions[0]: 10})

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_address, enable_auto_commit=False)
    async with running(consumer):
        ends = await end_offsets(consumer, partitions)
    committed = await committed_offsets(kafka, group, partitions)

    assert ends == {tp: sum(1 for p, _, _ in written if p == tp.partition) for tp in partitions}
    lags = lag_by_partition(ends, committed)
    assert [(lag.partition, lag.committed, lag.lag) for lag in lags] == [(0, 10, 65 - 10), (1, None, 65)]


async def test_replay_of_one_job_publishes_exactly_its_messages_with_their_origin(kafka_address, topic):
    kafka = KafkaConnection(bootstrap_servers=kafka_address)
    target = f"{topic}-replayed"
    await _create(kafka_address, topic, target)
    job, other = uuid4(), uuid4()
    await _produce(kafka_address, topic, [str(job).encode(), str(other).encode(), str(other).encode()], 60)

    outcome = await replay(kafka, topic, target, Selection(job_id=job))

    copied = [record async for record in read_records(kafka, target, Selection())]
    assert outcome.published == len(copied) == 20
    assert {record.key for record in copied} == {str(job).encode()}
    origins = {dict(record.headers)[REPLAYED_FROM_HEADER].decode() for record in copied}
    originals = {f"{r.topic}/{r.partition}/{r.offset}" async for r in read_records(kafka, topic, Selection(job_id=job))}
    assert origins == originals


async def test_a_time_range_is_found_by_message_timestamps_and_a_group_rewinds_to_it(kafka_address, topic):
    kafka = KafkaConnection(bootstrap_servers=kafka_address)
    await _create(kafka_address, topic)
    await _produce(kafka_address, topic, [b"k"], 40)
    # The timestamps the broker hands back when reading are the ones a time range is matched against.
    boundary_ms = max([r.timestamp_ms async for r in read_records(kafka, topic, Selection())]) + 1
    _wait_for_next_millisecond(boundary_ms)
    after = await _produce(kafka_address, topic, [b"k"], 30)
    boundary = datetime.fromtimestamp(boundary_ms / 1000, UTC)

    selected = [record async for record in read_records(kafka, topic, Selection(since=boundary))]
    first_after = await offsets_at_time(kafka, topic, boundary)
    group = f"g-{uuid4().hex[:8]}"
    committed = await rewind_group(kafka, group, topic, first_after)

    assert sorted((r.partition, r.offset) for r in selected) == sorted((p, o) for p, o, _ in after)
    expected = {p: min(o for q, o, _ in after if q == p) for p in range(PARTITIONS)}
    assert first_after == expected
    assert committed == expected
    assert await committed_offsets(kafka, group, [TopicPartition(topic, p) for p in range(PARTITIONS)]) == {
        TopicPartition(topic, p): expected[p] for p in range(PARTITIONS)
    }


async def test_an_unknown_topic_is_a_clear_error(kafka_address):
    kafka = KafkaConnection(bootstrap_servers=kafka_address)
    with pytest.raises(OpsError, match="does not exist"):
        [record async for record in read_records(kafka, f"missing-{uuid4().hex[:8]}", Selection())]


def test_the_sluice_commands_replay_a_job_rewind_a_group_and_report_its_lag(kafka_address, monkeypatch, capsys):
    from sluice.cli.__main__ import main

    prefix = f"cli{uuid4().hex[:8]}"
    source, target = f"{prefix}.results", f"{prefix}.results-copy"
    job = uuid4()

    async def prepare() -> None:
        await _create(kafka_address, source, target)
        await _produce(kafka_address, source, [str(job).encode(), str(uuid4()).encode()], 30)

    asyncio.run(prepare())
    monkeypatch.setenv("SLUICE_CONFIG", "/nonexistent/sluice.toml")
    connection = ["--kafka", kafka_address, "--topic-prefix", prefix, "--json"]
    group = f"g-{uuid4().hex[:8]}"

    def sluice(*args: str) -> object:
        assert main([*args, *connection]) == 0
        return json.loads(capsys.readouterr().out)

    replayed = sluice("replay", "results", "--to", target, "--job", str(job))
    rewound = sluice("groups", "rewind", group, "--topic", "results", "--to-offset", "5")
    [report] = sluice("topics", "--topic", source, "--group", group)

    assert replayed == {"source": source, "target": target, "published": 15}
    assert rewound["committed"] == {"0": 5, "1": 5}
    assert report["partitions"] == PARTITIONS and report["written"] == 30
    assert report["groups"][group]["lag"] == 30 - 2 * 5


def test_replaying_a_topic_into_itself_is_refused(kafka_address, capsys):
    from sluice.cli.__main__ import main

    assert main(["replay", "results", "--to", "sluice.results", "--kafka", kafka_address]) == 2
    assert "must differ" in capsys.readouterr().err
