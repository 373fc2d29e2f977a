"""Trace context helpers: what a hop carries on, and what a span is about."""

from opentelemetry.sdk.trace import TracerProvider

from shared.tracing import (
    carried,
    current_traceparent,
    links_to,
    parent_context,
    record_headers,
    span_context_of,
    target_host,
)
from sluice.contracts.headers import JOB_TRACE_HEADER, SUBMITTED_AT_HEADER


def test_the_target_host_is_the_items_url_host_or_its_url_field_else_none():
    assert target_host("https://Example.org:8443/a?b=1") == "example.org"
    assert target_host({"url": "http://10.0.0.1/x"}) == "10.0.0.1"
    assert target_host({"n": 1}) is None
    assert target_host("not a url") is None


def test_only_the_job_level_headers_are_carried_to_the_next_hop():
    headers = record_headers([("traceparent", b"00-x"), (JOB_TRACE_HEADER, b"root"), (SUBMITTED_AT_HEADER, b"5"),
                              ("bad", b"\xff")])  # fmt: skip
    assert "bad" not in headers
    assert carried(headers) == {JOB_TRACE_HEADER: "root", SUBMITTED_AT_HEADER: "5"}


def test_a_spans_traceparent_round_trips_into_a_parent_and_a_link():
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("root") as span:
        traceparent = current_traceparent()
    assert traceparent is not None
    context = span_context_of(traceparent)
    assert context is not None and context.span_id == span.get_span_context().span_id
    parent = parent_context({"traceparent": traceparent})
    with tracer.start_as_current_span("child", context=parent) as child:
        assert child.parent is not None and child.parent.span_id == span.get_span_context().span_id
    assert parent_context({}) is None and span_context_of("garbage") is None
    assert [link.context for link in links_to([None, context, context], limit=1)] == [context]
