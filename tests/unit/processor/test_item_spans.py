"""Item spans from the runner, exported in memory: every item, or only the failed ones with their real timing."""

import asyncio
from collections.abc import Mapping
from contextlib import asynccontextmanager
from uuid import uuid4

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from services.processor.runner import FailurePolicy, KindRunner
from shared.failures import RetryPolicy
from shared.kinds import Kind
from shared.kinds.settings import KindSettings
from shared.wire import wire_task_batch
from sluice.contracts.events import TaskBatch, TaskItem


async def _handle(item, options: Mapping):
    await asyncio.sleep(0.01)
    if item.get("fail"):
        raise ValueError(f"item {item['n']} is bad")
    return item


@asynccontextmanager
async def _start(settings: KindSettings):
    yield _handle


async def _spans(item_spans: str) -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runner = KindRunner(
        {"test.spans": Kind("test.spans", lambda item: item, _start)}, 4,
        FailurePolicy(retry=RetryPolicy(max_attempts=1)), tracer=provider.get_tracer("test"), item_spans=item_spans,
    )  # fmt: skip
    await runner.start(KindSettings())
    items = [{"n": 0, "url": "https://a.example/x"}, {"n": 1, "fail": True, "url": "https://b.example/y"}]
    batch = TaskBatch(tenant="t", job_id=uuid4(), kind="test.spans", batch_index=0,
                      items=[TaskItem(index=i, input=item) for i, item in enumerate(items)])  # fmt: skip
    batch = wire_task_batch(batch)
    try:
        await runner.run(batch)
    finally:
        await runner.close()
    return list(exporter.get_finished_spans())


@pytest.mark.parametrize("mode", ["all", "failed"])
async def test_a_failed_items_span_records_its_error_its_kind_host_and_real_duration(mode):
    spans = await _spans(mode)
    failed = [s for s in spans if s.status.status_code is StatusCode.ERROR]
    assert len(failed) == 1
    span = failed[0]
    assert span.name == "item test.spans"
    assert span.attributes["sluice.kind"] == "test.spans" and span.attributes["server.address"] == "b.example"
    assert span.attributes["sluice.item_index"] == 1
    assert [event.name for event in span.events] == ["exception"]
    assert "item 1 is bad" in span.events[0].attributes["exception.message"]
    assert span.end_time - span.start_time >= 10_000_000, "the span covers the handler call (10 ms)"


async def test_every_item_has_a_span_in_mode_all_and_only_failed_ones_in_mode_failed():
    assert sorted(s.attributes["sluice.item_index"] for s in await _spans("all")) == [0, 1]
    assert [s.attributes["sluice.item_index"] for s in await _spans("failed")] == [1]
