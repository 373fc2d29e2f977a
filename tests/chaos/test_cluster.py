"""Chaos on a 3-broker Apache Kafka cluster (topics on three brokers, two in sync): a broker killed, every broker
restarted in turn, the whole cluster stopped and started, all mid-job; nothing accepted is lost or counted twice."""

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.ops.devstack.brokers import CLUSTER_REPLICATION
from services.ops.devstack.kafka import KafkaCluster, KafkaNode, running_kafka
from tests.support.chaos import (
    Scale,
    ScenarioRecord,
    assert_completed_whole,
    audit_job,
    follow,
    progress_rate,
    submit,
    wait_for_assignment,
    wait_until_partly_done,
)
from tests.support.kafka_required import kafka_tools
from tests.support.pipeline import Pipeline
from tests.support.stack import FreshStacks

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.kafka, pytest.mark.cluster]

START_TIMEOUT_S = 120.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KafkaCluster]:
    """Three KRaft nodes only this scenario uses, data on disk."""
    with kafka_tools(), running_kafka(tmp_path / "kafka", nodes=3) as started:
        yield started


async def on_cluster(fresh_stack: FreshStacks, cluster: KafkaCluster) -> Pipeline:
    """The data path on the cluster, its processor and aggregator in their groups."""
    pipeline = await fresh_stack.start({"KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap, **CLUSTER_REPLICATION})
    await wait_for_assignment(pipeline, "processor", pipeline.topics.tasks)
    await wait_for_assignment(pipeline, "aggregator", pipeline.topics.results)
    return pipeline


async def busiest_leader(cluster: KafkaCluster, topics: list[str]) -> KafkaNode:
    """The node that leads the most partitions of `topics` now."""
    async with cluster.admin_client() as admin:
        described = await admin.describe_topics(topics)
    led = Counter(partition["leader"] for topic in described for partition in topic["partitions"])
    return cluster.node(led.most_common(1)[0][0])


async def restarted(node: KafkaNode) -> None:
    await asyncio.to_thread(node.start, START_TIMEOUT_S)


async def test_the_broker_leading_most_task_and_result_partitions_killed_mid_job_loses_nothing(
    cluster: KafkaCluster, fresh_stack: FreshStacks, scale: Scale, scenario: ScenarioRecord
) -> None:
    pipeline = await on_cluster(fresh_stack, cluster)
    async with pipeline.client() as client:
        job_id = await submit(client, "bench.cpu", scale.items, {"rounds": scale.cpu_rounds})
        await wait_until_partly_done(client, job_id)
        victim = await busiest_leader(cluster, [pipeline.topics.tasks, pipeline.topics.results])
        killed_at = time.monotonic()
        victim.kill()
        scenario.kills += 1
        scenario.broker_kills += 1
        following = asyncio.create_task(follow(client, job_id, killed_at))
        # Results flow again on the two that are left, then the killed broker comes back mid-job.
        await progress_rate(client, job_id, 1)
        await restarted(victim)
        timeline = await following

    audit = await audit_job(pipeline.database_url, timeline.final, scale.items)
    scenario.add(audit)
    scenario.measured["recovery_s"] = round(timeline.first_progress_after_mark() or -1.0, 3)
    scenario.measured["longest_stall_s"] = round(timeline.longest_stall(), 3)
    assert_completed_whole(audit, pipeline)


async def test_every_broker_restarted_in_turn_during_a_job_loses_nothing(
    cluster: KafkaCluster, fresh_stack: FreshStacks, scale: Scale, scenario: ScenarioRecord
) -> None:
    pipeline = await on_cluster(fresh_stack, cluster)
    async with pipeline.client() as client:
        job_id = await submit(client, "bench.cpu", scale.rolling_items, {"rounds": scale.rolling_cpu_rounds})
        await wait_until_partly_done(client, job_id)
        started_at = time.monotonic()
        following = asyncio.create_task(follow(client, job_id, started_at))
        for node in cluster.nodes:
            await asyncio.to_thread(node.stop)  # SIGTERM: it hands its leaderships over, then exits
            scenario.kills += 1
            scenario.broker_kills += 1
            await restarted(node)
        restart_s = time.monotonic() - started_at
        timeline = await following

    audit = await audit_job(pipeline.database_url, timeline.final, scale.rolling_items)
    scenario.add(audit)
    scenario.measured["rolling_restart_s"] = round(restart_s, 3)
    scenario.measured["job_ran_on_after_restart_s"] = round(timeline.samples[-1][0] - restart_s, 3)
    scenario.measured["longest_stall_s"] = round(timeline.longest_stall(), 3)
    assert_completed_whole(audit, pipeline)


async def test_the_whole_cluster_stopped_and_started_mid_job_finishes_every_accepted_job(
    cluster: KafkaCluster, fresh_stack: FreshStacks, scale: Scale, scenario: ScenarioRecord
) -> None:
    pipeline = await on_cluster(fresh_stack, cluster)
    async with pipeline.client() as client:
        job_id = await submit(client, "bench.cpu", scale.items, {"rounds": scale.cpu_rounds})
        await wait_until_partly_done(client, job_id)
        stopped_at = time.monotonic()
        await asyncio.to_thread(cluster.stop)
        scenario.kills += len(cluster.nodes)
        scenario.broker_kills += len(cluster.nodes)
        await asyncio.to_thread(cluster.start, START_TIMEOUT_S)
        back_s = time.monotonic() - stopped_at
        timeline = await follow(client, job_id, stopped_at)

    audit = await audit_job(pipeline.database_url, timeline.final, scale.items)
    scenario.add(audit)
    scenario.measured["cluster_down_s"] = round(back_s, 3)
    scenario.measured["longest_stall_s"] = round(timeline.longest_stall(), 3)
    scenario.measured["completion_after_stop_s"] = round(timeline.samples[-1][0], 3)
    assert_completed_whole(audit, pipeline)
