"""Tracing set-up: one TracerProvider per service process, configured by the standard OTEL_* variables."""

import logging
import os

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from shared.config import OtelSettings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def make_tracer_provider(settings: OtelSettings, service: str) -> TracerProvider:
    """A provider that exports over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set, else records nothing."""
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", f"sluice-{service}")})
    provider = TracerProvider(resource=resource)
    if settings.otel_sdk_disabled or settings.otel_traces_exporter == "none":
        return provider
    if settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def configure_logging(level: str | None = None) -> None:
    """Plain one-line logs to stderr; SLUICE_LOG_LEVEL picks the level (default INFO)."""
    logging.basicConfig(level=(level or os.environ.get("SLUICE_LOG_LEVEL", "INFO")).upper(), format=LOG_FORMAT)
    # FastStream logs every message at INFO; that is noise at thousands of batches per second.
    logging.getLogger("faststream.access").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
