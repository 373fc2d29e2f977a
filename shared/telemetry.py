"""Tracing and logging set-up: one TracerProvider per service process, configured by the standard OTEL_* variables,
and one JSON object per log line carrying the current trace and span ids."""

import logging
import os
from datetime import UTC, datetime

import orjson
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from shared.config import OtelSettings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def make_tracer_provider(settings: OtelSettings, service: str) -> TracerProvider:
    """A provider that exports over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set. Otherwise it samples
    nothing: spans are not recorded (a recorded span costs CPU, and a small job makes a dozen), but each
    still has ids, so logs and dead letters carry trace ids and the context still crosses every hop."""
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", f"sluice-{service}")})
    if not tracing_enabled(settings):
        return TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def tracing_enabled(settings: OtelSettings) -> bool:
    """Whether spans leave the process at all; when not, the per-item spans are not even created."""
    exporting = bool(settings.otel_exporter_otlp_endpoint)
    return exporting and not settings.otel_sdk_disabled and settings.otel_traces_exporter != "none"


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the current trace/span ids and any exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = format(context.trace_id, "032x")
            line["span_id"] = format(context.span_id, "016x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(level: str | None = None) -> None:
    """Logs to stderr; SLUICE_LOG_LEVEL picks the level (default INFO), SLUICE_LOG_FORMAT json (default) or text."""
    handler = logging.StreamHandler()
    if os.environ.get("SLUICE_LOG_FORMAT", "json").lower() == "text":
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    else:
        handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=(level or os.environ.get("SLUICE_LOG_LEVEL", "INFO")).upper(), handlers=[handler])
    # FastStream logs every message at INFO; that is noise at thousands of batches per second.
    logging.getLogger("faststream.access").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
