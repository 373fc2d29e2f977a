"""The leading dispatcher exports the backlog it counts, per priority, over the real database and broker, and stops
exporting it (absent, not frozen) when it loses the lead."""

import asyncio

import asyncpg
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.parser import text_string_to_metric_families

from services.intake.dispatch.dispatcher import LEADER_LOCK_ID, Dispatcher
from shared.config import FlowSettings, KafkaSettings
from shared.kafka import ensure_topics, make_broker
from shared.metrics import SluiceMetrics
from shared.plans import TenancySettings
from shared.stores.tenants import TenantStore
from shared.tenant_plans import TenantPlans
from tests.integration.observability.leadership import lock_taken_from_holder
from tests.support.dispatching import admit
from tests.support.poll import eventually


def _backlog(metrics: SluiceMetrics) -> dict[str, float]:
    return {
        sample.labels["priority"]: sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
        if sample.name == "sluice_backlog_batches"
    }


def _tenant_gauges(metrics: SluiceMetrics) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels["tenant"]): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
        if sample.name in ("sluice_tenant_in_flight", "sluice_tenant_waiting")
    }


async def test_the_leader_exports_unreleased_batches_per_priority_until_it_loses_the_lead(
    db: asyncpg.Pool, database_url: str, kafka_address: str, topic_prefix: str
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_address, topic_prefix=topic_prefix)
    await ensure_topics(kafka)
    broker = make_broker(kafka, client_id="test-dispatcher", tracer_provider=TracerProvider())
    await broker.connect()
    metrics = SluiceMetrics()
    plans = TenantPlans(TenantStore(db), TenancySettings(defaults={"max_in_flight_batches": 1}))
    flow = FlowSettings(tick_s=0.1, leader_retry_s=0.1)
    leading = asyncio.create_task(Dispatcher(db, broker, kafka.topics, flow, plans, 64, 10.0, metrics).run_forever())
    try:
        await admit(db, batches=3)  # the plan lets one batch be in flight: two stay in the backlog

        async def backlog_is(expected: dict[str, float]) -> bool | None:
            return True if _backlog(metrics) == expected else None

        await eventually(lambda: backlog_is({"high": 0, "normal": 2, "bulk": 0}), timeout=15)

        async def tenant_load_exported() -> bool | None:
            return True if _tenant_gauges(metrics) else None

        await eventually(tenant_load_exported, timeout=15)
        async with lock_taken_from_holder(database_url, LEADER_LOCK_ID):
            await eventually(lambda: backlog_is({}), timeout=15)
            assert _tenant_gauges(metrics) == {}, "the tenants' load is the leader's to export, like the backlog"
    finally:
        leading.cancel()
        await asyncio.gather(leading, return_exceptions=True)
        await broker.stop()
