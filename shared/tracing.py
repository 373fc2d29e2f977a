"""Trace context across Kafka hops: the W3C ``traceparent`` FastStream injects, plus the job's root span.

Every message of a job carries ``sluice-job-traceparent``: the span that accepted the job (intake's HTTP span, or
its front-door consume span). Consumers link to it, so a batch processed in a poll of many jobs still points at
the job it belongs to. ``sluice-submitted-at`` (epoch ms) rides along for the end-to-end latency metric.
"""

import secrets
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import JsonValue

from sluice.contracts.headers import CARRIED_HEADERS, JOB_TRACE_HEADER

_PROPAGATOR = TraceContextTextMapPropagator()


def record_headers(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    """A ConsumerRecord's headers as text (undecodable values are skipped)."""
    decoded: dict[str, str] = {}
    for name, value in headers or ():
        try:
            decoded[name] = value.decode() if isinstance(value, bytes | bytearray) else str(value)
        except UnicodeDecodeError:
            continue
    return decoded


def carried(headers: Mapping[str, str]) -> dict[str, str]:
    """The job-level headers to pass on to the next hop."""
    return {name: headers[name] for name in CARRIED_HEADERS if name in headers}


def current_traceparent() -> str | None:
    """The current span as a W3C traceparent value, or None outside a recorded span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def untraced_root() -> str:
    """A traceparent for a job accepted with tracing off: fresh ids, not sampled. It gives the job one trace id
    on every hop (dead letters and log lines carry it) at the cost of two random numbers."""
    return f"00-{secrets.randbits(128) or 1:032x}-{secrets.randbits(64) or 1:016x}-00"


def parent_context(headers: Mapping[str, str]) -> Context | None:
    """The producer's span context from a message's ``traceparent`` header (tracing on), else the job's root
    span (``JOB_TRACE_HEADER``), if the message has either."""
    traceparent = headers.get("traceparent") or headers.get(JOB_TRACE_HEADER)
    if not traceparent:
        return None
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def span_context_of(traceparent: str | None) -> SpanContext | None:
    if not traceparent:
        return None
    context = trace.get_current_span(_PROPAGATOR.extract({"traceparent": traceparent})).get_span_context()
    return context if context.is_valid else None


def links_to(contexts: Sequence[SpanContext | None], *, limit: int) -> list[Link]:
    """Links to the valid contexts among ``contexts``, at most ``limit`` of them (the first ones)."""
    return [Link(context) for context in contexts if context is not None and context.is_valid][:limit]


def target_host(item: JsonValue) -> str | None:
    """The host an item points at: the item itself when it is a URL, or its ``url`` field."""
    url = item.get("url") if isinstance(item, dict) else item
    if not isinstance(url, str) or "://" not in url:
        return None
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None
