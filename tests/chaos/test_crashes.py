"""Chaos: a processor or the aggregator killed with SIGKILL mid-job; nothing lost, nothing counted twice."""

import signal
import time

import pytest

from tests.support.chaos import (
    Scale,
    ScenarioRecord,
    assert_completed_whole,
    audit_job,
    follow,
    submit,
    wait_for_assignment,
    wait_until_partly_done,
)
from tests.support.pipeline import Pipeline

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]


async def test_one_of_two_processors_killed_mid_job_loses_no_item_and_results_flow_again(
    pipeline: Pipeline, scale: Scale, scenario: ScenarioRecord
) -> None:
    survivor = pipeline.start_service("processor")
    # Both in the group before the job starts, so the kill measures a takeover, not a late join.
    await wait_for_assignment(pipeline, survivor, pipeline.topics.tasks)
    async with pipeline.client() as client:
        # Four times the work per item: the victim must still hold unprocessed tasks when it dies.
        job_id = await submit(client, "bench.cpu", scale.items, {"rounds": scale.cpu_rounds * 4})
        await wait_until_partly_done(client, job_id)
        killed_at = time.monotonic()
        pipeline.kill("processor", signal.SIGKILL)
        scenario.kills += 1
        timeline = await follow(client, job_id, killed_at)

    audit = await audit_job(pipeline.database_url, timeline.final, scale.items)
    scenario.add(audit)
    scenario.measured["recovery_s"] = round(timeline.first_progress_after_mark() or -1.0, 3)
    scenario.measured["longest_stall_s"] = round(timeline.longest_stall(), 3)
    scenario.measured["completion_after_kill_s"] = round(timeline.samples[-1][0], 3)
    assert survivor in pipeline.supervisor.pids()
    assert_completed_whole(audit, pipeline)
    assert timeline.first_progress_after_mark() is not None


async def test_the_aggregator_killed_mid_job_and_restarted_loses_no_item_and_counts_each_once(
    pipeline: Pipeline, scale: Scale, scenario: ScenarioRecord
) -> None:
    async with pipeline.client() as client:
        # bench.cpu, not bench.noop: a noop job of this size is done before a poll can catch it half-way.
        job_id = await submit(client, "bench.cpu", scale.items * 2, {"rounds": scale.cpu_rounds})
        await wait_until_partly_done(client, job_id)
        killed_at = time.monotonic()
        pipeline.kill("aggregator", signal.SIGKILL)
        scenario.kills += 1
        pipeline.start_service("aggregator")
        timeline = await follow(client, job_id, killed_at)

    audit = await audit_job(pipeline.database_url, timeline.final, scale.items * 2)
    scenario.add(audit)
    scenario.measured["recovery_s"] = round(timeline.first_progress_after_mark() or -1.0, 3)
    assert_completed_whole(audit, pipeline)
