"""Structured logs: one JSON object per line, carrying the current trace and span ids."""

import json
import logging
import sys

from opentelemetry.sdk.trace import TracerProvider

from shared.telemetry import JsonLogFormatter


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("sluice.test", logging.WARNING, __file__, 1, message, args, None)


def test_a_log_line_inside_a_span_names_its_trace_and_span():
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        line = JsonLogFormatter().format(_record("job %s: %d items", "j1", 3))
    parsed = json.loads(line)
    assert "\n" not in line
    assert parsed["message"] == "job j1: 3 items" and parsed["level"] == "WARNING" and parsed["logger"] == "sluice.test"
    assert parsed["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert parsed["span_id"] == format(span.get_span_context().span_id, "016x")


def test_a_log_line_outside_any_span_has_no_trace_ids_and_keeps_a_multiline_exception_on_one_line():
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    line = JsonLogFormatter().format(record)
    parsed = json.loads(line)
    assert "\n" not in line and "trace_id" not in parsed
    assert "ValueError: boom" in parsed["exception"]
