"""Chaos: SIGTERM to every service mid-job; each exits within a bound, and once restarted the job completes."""

import asyncio
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
    wait_for_exit,
    wait_until_partly_done,
    wait_until_ready,
)
from tests.support.pipeline import Pipeline

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

SERVICES = ("intake", "processor", "aggregator")
SHUTDOWN_BOUND_S = 20.0


async def test_every_service_exits_within_bound_on_sigterm_mid_job_and_after_a_restart_nothing_is_lost(
    pipeline: Pipeline, scale: Scale, scenario: ScenarioRecord
) -> None:
    async with pipeline.client() as client:
        job_id = await submit(client, "bench.cpu", scale.items, {"rounds": scale.cpu_rounds})
        await wait_until_partly_done(client, job_id)
        signalled_at = time.monotonic()
        for label in SERVICES:
            pipeline.kill(label, signal.SIGTERM)
        scenario.kills += len(SERVICES)
        exit_after = await asyncio.gather(
            *(wait_for_exit(pipeline, label, signalled_at, timeout=SHUTDOWN_BOUND_S + 10) for label in SERVICES)
        )
        exit_codes = {noticed.name: noticed.exit_code for noticed in pipeline.supervisor.exits}
        for name in SERVICES:
            pipeline.start_service(name)
        await wait_until_ready(pipeline)
        timeline = await follow(client, job_id, time.monotonic())

    audit = await audit_job(pipeline.database_url, timeline.final, scale.items)
    scenario.add(audit)
    exits = dict(zip(SERVICES, exit_after, strict=True))
    scenario.measured.update({f"{name}_exit_s": round(after, 3) for name, after in exits.items()})
    assert max(exit_after) <= SHUTDOWN_BOUND_S, exits
    assert set(exit_codes.values()) <= {0, -signal.SIGTERM}, exit_codes
    assert_completed_whole(audit, pipeline)
