"""One job's trace across intake, processor and aggregator, as exported over OTLP/HTTP by the real services."""

import json
from collections.abc import Iterator

import pytest

from services.ops.devstack.testsite import TestSite, serving_test_site
from tests.support.otlp import ERROR_STATUS, ReceivedSpan, SpanSink, receiving_spans
from tests.support.pipeline import wait_for_status
from tests.support.poll import eventually
from tests.support.stack import FreshStacks

pytestmark = [pytest.mark.e2e, pytest.mark.tracing]

SERVER, CONSUMER, CLIENT = 2, 5, 3  # opentelemetry.proto.trace.v1.Span.SpanKind


@pytest.fixture(scope="module")
def site() -> Iterator[TestSite]:
    with serving_test_site(pages=10) as running:
        yield running


@pytest.fixture
def spans() -> Iterator[SpanSink]:
    with receiving_spans() as sink:
        yield sink


def _ancestors(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[ReceivedSpan]:
    chain = []
    while span.parent_id and span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


async def test_one_jobs_spans_from_all_three_services_form_one_tree_with_links_and_a_failed_item_records_its_error(
    spans: SpanSink, fresh_stack: FreshStacks, site: TestSite
) -> None:
    """On a stack of its own: every span it exported is this job's."""
    exporting = {"OTEL_EXPORTER_OTLP_ENDPOINT": spans.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    traced = await fresh_stack.start({**exporting, "SLUICE_INTAKE_BATCH_SIZE": "2"})
    urls = [site.page_url(0), site.page_url(1), site.page_url(2), site.url("/business/404")]
    async with traced.client() as client:
        response = await client.post(
            "/v1/jobs", json={"kind": "web.page", "items": urls, "options": {"retry": {"max_attempts": 1}}}
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        final = await wait_for_status(client, job_id, timeout=60)
    assert final["status"] == "partially_failed", traced.logs()

    async def job_exported() -> list[ReceivedSpan] | None:
        """The job's completion span and both its batch spans: each service exports on its own schedule, so the
        processor's spans (their item spans end before them) can arrive after the aggregator's."""
        received = spans.snapshot()
        of_job = [s for s in received if s.attributes.get("sluice.job_id") == job_id]
        done = any(s.name == "job partially_failed" for s in of_job)
        return received if done and sum(s.name == "process task.batch" for s in of_job) == 2 else None

    received = await eventually(job_exported, timeout=30)
    roots = [s for s in received if s.name == "POST /v1/jobs" and s.service == "sluice-intake"]
    assert len(roots) == 1 and roots[0].kind == SERVER and roots[0].parent_id == ""
    root = roots[0]
    trace = {s.span_id: s for s in received if s.trace_id == root.trace_id}
    assert {s.service for s in trace.values()} == {"sluice-intake", "sluice-processor", "sluice-aggregator"}

    batches = [s for s in trace.values() if s.name == "process task.batch"]
    assert sorted(s.attributes["sluice.batch_index"] for s in batches) == [0, 1]
    for batch in batches:
        chain = _ancestors(batch, trace)
        assert chain[-1] is root, "a batch span descends from the job's HTTP span"
        assert any(s.service == "sluice-intake" and s.kind != SERVER for s in chain), "through intake's publish span"
        assert (root.trace_id, root.span_id) in batch.links, "and links to the job's root span"

    items = [s for s in trace.values() if s.name == "item web.page"]
    assert len(items) == 4
    assert all(trace[s.parent_id].name == "process task.batch" for s in items)
    assert {s.attributes["server.address"] for s in items} == {"127.0.0.1"}
    failed = [s for s in items if s.status_code == ERROR_STATUS]
    assert [s.attributes["sluice.item_index"] for s in failed] == [3]
    assert "exception" in failed[0].events
    assert all("exception" not in s.events for s in items if s is not failed[0])

    aggregated = [s for s in trace.values() if s.name == "aggregate batch.processed"]
    assert len(aggregated) == 2
    for span in aggregated:
        assert span.service == "sluice-aggregator" and span.kind == CONSUMER
        assert any(s.name == "process task.batch" for s in _ancestors(span, trace)), "results hop: processor → here"
    aggregated_ids = {(s.trace_id, s.span_id) for s in aggregated}
    writes = [s for s in received if s.name == "postgres record results" and set(s.links) & aggregated_ids]
    assert writes and all(s.kind == CLIENT and s.attributes["db.system"] == "postgresql" for s in writes)
    assert set().union(*(set(s.links) for s in writes)) >= aggregated_ids, "every result message is in a write"

    completion = next(s for s in received if s.name == "job partially_failed")
    assert completion.parent_id == root.span_id and completion.trace_id == root.trace_id
    assert set(completion.links) == aggregated_ids, "the completion span links the job's batches"

    # The processor's "1 dead-lettered" line was logged inside the batch span: one JSON object with its ids.
    logged = [
        json.loads(line.split("] ", 1)[1])
        for line in traced.logs(lines=2000).splitlines()
        if line.startswith("[processor] {") and root.trace_id in line
    ]
    assert any("dead-lettered" in entry["message"] and entry["span_id"] in trace for entry in logged), logged
