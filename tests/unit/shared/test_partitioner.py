"""The producers' partitioner: a job's task batches go round the partitions; other keys hash as Kafka's do."""

from uuid import uuid4

from aiokafka.partitioner import DefaultPartitioner

from shared.kafka import spread_batches

PARTITIONS = list(range(12))


def test_consecutive_batches_of_a_job_take_the_partitions_in_turn():
    job = uuid4()
    chosen = [spread_batches(f"{job}:{index}".encode(), PARTITIONS, PARTITIONS) for index in range(36)]
    assert sorted(chosen[:12]) == PARTITIONS  # every partition once per round
    assert chosen[12:24] == chosen[:12] == chosen[24:]
    assert all((b - a) % 12 == 1 for a, b in zip(chosen, chosen[1:], strict=False))


def test_different_jobs_start_their_round_at_different_partitions():
    starts = {spread_batches(f"{uuid4()}:0".encode(), PARTITIONS, PARTITIONS) for _ in range(200)}
    assert len(starts) >= 10  # one-batch jobs do not all land on one partition


def test_a_batch_always_goes_to_the_same_partition():
    key = f"{uuid4()}:7".encode()
    assert len({spread_batches(key, PARTITIONS, PARTITIONS) for _ in range(5)}) == 1


def test_any_other_key_is_hashed_as_the_default_partitioner_does():
    for key in (str(uuid4()).encode(), b"tenant-a", b"a:b", b":12"):
        assert spread_batches(key, PARTITIONS, PARTITIONS) == DefaultPartitioner()(key, PARTITIONS, PARTITIONS)


def test_a_missing_key_picks_an_available_partition():
    assert spread_batches(None, PARTITIONS, [3]) == 3
