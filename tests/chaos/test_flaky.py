"""Chaos: a handler that fails transiently for about 30 % of items; retries finish the job, each item once."""

import importlib.util
import time

import pytest

from tests.support.chaos import Scale, ScenarioRecord, audit_job, follow, submit
from tests.support.pipeline import Pipeline

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]


@pytest.mark.skipif(importlib.util.find_spec("shared.kinds.flaky") is None, reason="the bench.flaky kind is not here")
async def test_a_handler_failing_transiently_for_30_percent_of_items_still_completes_every_item_once(
    pipeline: Pipeline, scale: Scale, scenario: ScenarioRecord
) -> None:
    async with pipeline.client() as client:
        job_id = await submit(client, "bench.flaky", scale.items, {"fail_rate": 0.3, "fail_times": 1})
        timeline = await follow(client, job_id, time.monotonic())

    audit = await audit_job(pipeline.database_url, timeline.final, scale.items)
    scenario.add(audit)
    scenario.measured["completion_s"] = round(timeline.samples[-1][0], 3)
    assert audit.status == "completed", (timeline.final, pipeline.logs())
    assert timeline.final["counts"]["succeeded"] == scale.items
    assert (audit.lost, audit.duplicates) == (0, 0)
    assert audit.counts_match_rows
