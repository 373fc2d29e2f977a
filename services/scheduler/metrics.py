"""The scheduler's rescan metrics: per-tenant OpenTelemetry gauges over its latest statistics.

Exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (as traces are); otherwise recorded nowhere.
"""

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource

from shared.config import OtelSettings

GAUGES = {
    "sluice.rescan.watched_items": ("watched_items", "Items watched by the tenant"),
    "sluice.rescan.due_next_hour": ("due_next_hour", "Rescans due within the next hour"),
    "sluice.rescan.due_next_day": ("due_next_day", "Rescans due within the next day"),
    "sluice.rescan.scans_issued": ("scans_issued", "Item rescans issued so far"),
    "sluice.rescan.scans_saved": ("scans_saved", "Item rescans saved against a fixed daily rescan"),
}


def readers_from(settings: OtelSettings) -> list[MetricReader]:
    if settings.otel_sdk_disabled or not settings.otel_exporter_otlp_endpoint:
        return []
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return [PeriodicExportingMetricReader(OTLPMetricExporter())]


class RescanGauges:
    """Holds the latest statistics per tenant and reports them whenever a reader collects."""

    def __init__(self, readers: Sequence[MetricReader]) -> None:
        resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "sluice-scheduler")})
        self.provider = MeterProvider(metric_readers=list(readers), resource=resource)
        self._latest: dict[str, dict[str, int]] = {}
        meter = self.provider.get_meter("sluice.scheduler")
        for name, (field, description) in GAUGES.items():
            meter.create_observable_gauge(name, callbacks=[self._observer(field)], description=description)

    def update(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Replace the statistics with the scheduler's latest (a tenant without watches drops out)."""
        latest = {}
        for row in rows:
            values = {field: int(row[field]) for field in ("watched_items", "due_next_hour", "due_next_day")}
            values["scans_issued"] = int(row["scans_issued"])
            values["scans_saved"] = int(row["daily_equivalent"]) - values["scans_issued"]
            latest[str(row["tenant"])] = values
        self._latest = latest

    def _observer(self, field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(values[field], {"tenant": tenant}) for tenant, values in self._latest.items()]

        return observe

    def shutdown(self) -> None:
        self.provider.shutdown()
