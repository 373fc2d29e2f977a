"""Chaos: the intake that runs the dispatcher killed with SIGKILL mid-job; a standby intake takes over the
backlog and the job completes with every item once."""

import signal
import time

import pytest

from services.ops.devstack.ports import free_port
from tests.support.chaos import (
    Scale,
    ScenarioRecord,
    assert_completed_whole,
    audit_job,
    follow,
    submit,
    wait_until_partly_done,
    wait_until_ready,
)
from tests.support.pipeline import Pipeline
from tests.support.poll import eventually

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.fairness]

LEADING = "this intake now runs the dispatcher"


@pytest.fixture(scope="module")
def stack_overrides(stack_overrides: dict[str, str]) -> dict[str, str]:
    """A small window and small batches, so most of the job is still in the backlog when the leader dies."""
    return {**stack_overrides, "SLUICE_FLOW_WINDOW_BATCHES": "4", "SLUICE_INTAKE_BATCH_SIZE": "10"}


def _logged(pipeline: Pipeline, label: str, text: str) -> bool | None:
    return any(line.startswith(f"[{label}]") and text in line for line in pipeline.logs(5000).splitlines()) or None


async def test_the_dispatching_intake_killed_mid_job_hands_the_backlog_to_a_standby_and_nothing_is_lost(
    pipeline: Pipeline, scale: Scale, scenario: ScenarioRecord
) -> None:
    standby = pipeline.start_service("intake", {"SLUICE_INTAKE_PORT": str(free_port())})

    async def standby_logged(text: str) -> bool | None:
        return _logged(pipeline, standby, text)

    async with pipeline.client() as client:
        await eventually(lambda: standby_logged("intake ready on"), timeout=60)
        job_id = await submit(client, "bench.cpu", scale.items // 2, {"rounds": scale.cpu_rounds})
        await wait_until_partly_done(client, job_id)
        killed_at = time.monotonic()
        pipeline.kill("intake", signal.SIGKILL)
        scenario.kills += 1
        await eventually(lambda: standby_logged(LEADING), timeout=30)
        takeover_s = time.monotonic() - killed_at
        pipeline.start_service("intake")  # back on the known port for the REST API; the standby keeps leading
        await wait_until_ready(pipeline)
        timeline = await follow(client, job_id, killed_at)

    audit = await audit_job(pipeline.database_url, timeline.final, scale.items // 2)
    scenario.add(audit)
    scenario.measured["takeover_s"] = round(takeover_s, 3)
    assert_completed_whole(audit, pipeline)
