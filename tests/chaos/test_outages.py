"""Chaos: Postgres, Redis or the broker away mid-job; the API says so (503 + Retry-After) and nothing is lost."""

import asyncio
import time

import pytest

from services.intake.settings import IntakeSettings
from services.ops.devstack.pg_control import EmbeddedPostgres
from services.ops.devstack.ports import free_port
from services.ops.devstack.process import Paused, process_listening_on
from shared.config import RedisSettings
from tests.support.chaos import (
    Scale,
    ScenarioRecord,
    assert_completed_whole,
    audit_job,
    follow,
    item_statuses,
    metric_by_label,
    outage_probes,
    processor_pace,
    progress_rate,
    submit,
    wait_until_partly_done,
)
from tests.support.infra import SuiteBroker
from tests.support.pipeline import wait_for_status
from tests.support.stack import FreshStacks

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

STALL_TIMEOUT_S = 2


async def test_postgres_stopped_mid_job_gives_503_with_retry_after_and_the_job_completes_once_it_is_back(
    own_postgres: EmbeddedPostgres, fresh_stack: FreshStacks, scale: Scale, scenario: ScenarioRecord
) -> None:
    pipeline = await fresh_stack.start({"DATABASE_URL": own_postgres.url})
    async with pipeline.client() as client:
        job_id = await submit(client, "bench.cpu", scale.items, {"rounds": scale.cpu_rounds})
        await wait_until_partly_done(client, job_id)
        own_postgres.stop()
        scenario.kills += 1
        try:
            during = await outage_probes(
                client, [f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/results"], scale.postgres_outage_s
            )
        finally:
            own_postgres.start()
        back_at = time.monotonic()
        timeline = await follow(client, job_id, back_at)
    audit = await audit_job(own_postgres.url, timeline.final, scale.items)

    scenario.add(audit)
    scenario.measured["recovery_after_restart_s"] = round(timeline.samples[-1][0], 3)
    assert during and {answer.status_code for answer in during} == {503}, [a.text for a in during[:3]]
    assert all(answer.headers.get("Retry-After", "").isdigit() for answer in during)
    assert_completed_whole(audit, pipeline)


async def test_with_redis_hung_mid_job_processing_goes_on_at_its_pace_and_a_cancel_still_ends_the_job_cancelled(
    own_redis: str, fresh_stack: FreshStacks, scale: Scale, scenario: ScenarioRecord
) -> None:
    """Degraded without Redis: processors cannot read cancellation flags, so a cancelled job's batches already
    released still run, but those released after the cancel say so themselves and are skipped, and the aggregator
    (told through the topic) ends the job cancelled. The processor pays Redis's timeout once per back-off period
    (its circuit breaker), not once per poll, so its pace holds."""
    metrics_url = f"http://127.0.0.1:{(metrics_port := free_port())}/metrics"
    overrides = {
        "REDIS_URL": own_redis,
        "SLUICE_PROCESSOR_METRICS_PORT": str(metrics_port),
        # A few batches in flight: the second job waits in the backlog, so most of it is released after the cancel.
        "SLUICE_PLAN_MAX_IN_FLIGHT_BATCHES": "8",
    }
    port = int(own_redis.rsplit(":", 1)[1].split("/")[0])
    pipeline = await fresh_stack.start(overrides)
    async with pipeline.client() as client:
        options = {"rounds": scale.cpu_rounds}
        job_id = await submit(client, "bench.cpu", scale.items, options)
        doomed_id = await submit(client, "bench.cpu", scale.items, options)
        await wait_until_partly_done(client, job_id)
        # The processor's pace over a quarter of the job with Redis up, then over the next quarter with it hung.
        up = await processor_pace(metrics_url, progress_rate(client, job_id, scale.items // 4))
        with Paused(process_listening_on(port)):
            scenario.kills += 1
            hung_at = time.monotonic()
            hung = await processor_pace(metrics_url, progress_rate(client, job_id, scale.items // 4))
            cancel = await client.delete(f"/v1/jobs/{doomed_id}")
            timeline = await follow(client, job_id, hung_at)
            calls = await metric_by_label(metrics_url, "sluice_dependency_calls_total", "outcome")
            hung_s = time.monotonic() - hung_at
            doomed = await wait_for_status(client, doomed_id)
            doomed_rows = await item_statuses(pipeline.database_url, doomed_id, scale.items)
    audit = await audit_job(pipeline.database_url, timeline.final, scale.items)

    scenario.add(audit)
    scenario.measured.update(
        processor_items_per_s_redis_up=round(up.items_per_s, 1),
        processor_items_per_s_redis_hung=round(hung.items_per_s, 1),
        hung_over_up=round(hung.items_per_s / up.items_per_s, 3),
        longest_stall_s=round(timeline.longest_stall(), 3),
        redis_timeouts=calls.get("failed", 0),
        redis_calls_skipped=calls.get("skipped", 0),
        redis_hung_s=round(hung_s, 1),
    )
    backoff_s = RedisSettings.model_fields["breaker_backoff_s"].default
    assert cancel.status_code in (200, 202), cancel.text
    assert_completed_whole(audit, pipeline)
    assert doomed["status"] == "cancelled", doomed
    assert doomed_rows.get("cancelled", 0) > 0, f"batches released after the cancel are skipped: {doomed_rows}"
    assert calls.get("skipped", 0) > 0, calls
    assert calls.get("failed", 0) <= hung_s / backoff_s + 2, f"one timeout per {backoff_s} s at most: {calls}"


async def test_a_paused_broker_gives_503_never_202_and_the_services_reconnect_and_complete_the_job(
    own_broker: SuiteBroker, fresh_stack: FreshStacks, scale: Scale, scenario: ScenarioRecord
) -> None:
    overrides = {
        "KAFKA_BOOTSTRAP_SERVERS": own_broker.bootstrap,
        "SLUICE_INTAKE_PUBLISH_STALL_TIMEOUT_S": str(STALL_TIMEOUT_S),
        **own_broker.stack_env(),
    }
    pipeline = await fresh_stack.start(overrides)
    async with pipeline.client() as client:
        job_id = await submit(client, "bench.cpu", scale.items, {"rounds": scale.cpu_rounds})
        await wait_until_partly_done(client, job_id)
        with own_broker.paused():
            scenario.kills += 1
            paused_at = time.monotonic()
            during = []
            while time.monotonic() - paused_at < scale.broker_pause_s:
                sent_after_s = time.monotonic() - paused_at
                answer = await client.post("/v1/jobs", json={"kind": "bench.noop", "items": [1, 2, 3]})
                during.append((sent_after_s, answer))
                await asyncio.sleep(0.2)  # pacing inside a fixed-length outage
        timeline = await follow(client, job_id, time.monotonic())
        after = await client.post("/v1/jobs", json={"kind": "bench.noop", "items": [1, 2, 3]})
        # A submit in the first moments of the outage may still be accepted (intake trusts a successful
        # broker ping for BROKER_CHECK_TTL_S): it is stored in the backlog, so it must complete all the same.
        accepted_during = [answer.json()["job_id"] for _, answer in during if answer.status_code == 202]
        finals = [await wait_for_status(client, accepted) for accepted in accepted_during]
    audit = await audit_job(pipeline.database_url, timeline.final, scale.items)

    scenario.add(audit)
    scenario.measured["completion_after_resume_s"] = round(timeline.samples[-1][0], 3)
    trusted_s = float(IntakeSettings.model_fields["broker_check_ttl_s"].default)
    refused = [answer for sent_after_s, answer in during if sent_after_s > trusted_s + 0.2]
    assert refused and {answer.status_code for answer in refused} == {503}, [a.text for a in refused[:3]]
    assert {answer.status_code for _, answer in during} <= {202, 503}
    assert all(a.headers.get("Retry-After", "").isdigit() for _, a in during if a.status_code == 503)
    assert [final["status"] for final in finals] == ["completed"] * len(accepted_during)
    assert after.status_code == 202, after.text
    assert_completed_whole(audit, pipeline)
