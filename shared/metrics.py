"""Every metric Sluice exports, in one place: OpenTelemetry instruments read by a Prometheus exporter.

Each service makes one ``SluiceMetrics``; ``render()`` is the body of its ``/metrics`` endpoint. The Prometheus
names (what deploy/ dashboards and alerts use) are listed in ``PROMETHEUS_NAMES``; a unit test checks that every
metric in deploy/ is one of them.
"""

from collections.abc import Callable, Iterable, Mapping

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from prometheus_client import CollectorRegistry, generate_latest

from shared.histograms import BucketHistogram

LATENCY_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

PROMETHEUS_NAMES = {
    "sluice_consumer_lag": "gauge",
    "sluice_items_processed_total": "counter",
    "sluice_items_retried_total": "counter",
    "sluice_handler_duration_seconds": "histogram",
    "sluice_item_e2e_latency_seconds": "histogram",
    "sluice_jobs": "gauge",
    "sluice_jobs_stalled": "gauge",
    "sluice_jobs_finished_total": "counter",
    "sluice_dead_letters_total": "counter",
    "sluice_tenant_in_flight": "gauge",
    "sluice_tenant_waiting": "gauge",
    "sluice_rate_limited_requests_total": "counter",
    "sluice_webhook_deliveries_total": "counter",
    "sluice_sse_clients": "gauge",
    "sluice_dependency_calls_total": "counter",
}
"""Prometheus name → type, as the exporter renders them (counters get ``_total``, histograms ``_bucket`` etc.)."""

LagReading = tuple[str, int, str, int]
"""(topic, partition, consumer group, lag in messages)."""


class SluiceMetrics:
    """The instruments of one service process, each recorded by the code that knows the fact."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        reader = PrometheusMetricReader(registry=self.registry, scope_info_enabled=False, disable_target_info=True)
        latency_view = View(
            instrument_name="sluice.*.seconds*",
            aggregation=ExplicitBucketHistogramAggregation(LATENCY_BUCKETS_S),
        )
        self.provider = MeterProvider(
            metric_readers=[reader],
            resource=Resource.create({SERVICE_NAME: f"sluice-{service}"}),
            views=[latency_view],
        )
        meter = self.provider.get_meter("sluice")
        self._lag_sources: list[Callable[[], Iterable[LagReading]]] = []
        self._job_counts: dict[str, int] = {}
        self._stalled: int | None = None
        self._sse_clients: Callable[[], int] | None = None

        self.items_processed = meter.create_counter(
            "sluice.items.processed", description="Items that ended, by kind and status (succeeded, failed, ...)"
        )
        self.items_retried = meter.create_counter("sluice.items.retried", description="Items sent to a retry topic")
        # Recorded once per item: plain bucket counters, not the OpenTelemetry SDK (see shared/histograms.py).
        self.handler_duration = BucketHistogram(
            "sluice_handler_duration_seconds", "One handler call, by kind and outcome", LATENCY_BUCKETS_S
        )
        self.e2e_latency = BucketHistogram(
            "sluice_item_e2e_latency_seconds", "Job submitted → item result durable in Postgres, by kind",
            LATENCY_BUCKETS_S,
        )  # fmt: skip
        self.registry.register(self.handler_duration)
        self.registry.register(self.e2e_latency)
        self.jobs_finished = meter.create_counter("sluice.jobs.finished", description="Jobs that ended, by status")
        self.dead_letters = meter.create_counter(
            "sluice.dead_letters", description="Messages indexed from a dead-letter topic, by topic and error type"
        )
        self.tenant_in_flight = meter.create_gauge(
            "sluice.tenant.in_flight", description="Items of a tenant being processed now"
        )
        self.tenant_waiting = meter.create_gauge(
            "sluice.tenant.waiting", description="Items of a tenant waiting for capacity"
        )
        self.rate_limited = meter.create_counter(
            "sluice.rate_limited_requests", description="Requests refused by a rate limit, by tenant and limit"
        )
        self.webhook_deliveries = meter.create_counter(
            "sluice.webhook.deliveries", description="Webhook delivery attempts, by outcome"
        )
        self.dependency_calls = meter.create_counter(
            "sluice.dependency.calls",
            description="Calls to an optional dependency (redis), by outcome: ok, failed (error or timeout), "
            "skipped (its circuit breaker open)",
        )
        meter.create_observable_gauge(
            "sluice.consumer.lag", [self._observe_lag], description="Fetch high-water mark minus committed offset"
        )
        meter.create_observable_gauge("sluice.jobs", [self._observe_jobs], description="Jobs by status")
        meter.create_observable_gauge(
            "sluice.jobs.stalled", [self._observe_stalled], description="Running jobs with no result in the window"
        )
        meter.create_observable_gauge(
            "sluice.sse.clients", [self._observe_sse], description="Open live-progress streams on this intake"
        )

    # Recording helpers for facts other branches produce (tenancy and flow control).
    def set_tenant_load(self, tenant: str, *, in_flight: int, waiting: int) -> None:
        self.tenant_in_flight.set(in_flight, {"tenant": tenant})
        self.tenant_waiting.set(waiting, {"tenant": tenant})

    def count_rate_limited(self, tenant: str, limit: str) -> None:
        self.rate_limited.add(1, {"tenant": tenant, "limit": limit})

    def count_dependency_call(self, dependency: str, outcome: str) -> None:
        self.dependency_calls.add(1, {"dependency": dependency, "outcome": outcome})

    def watch_lag(self, source: Callable[[], Iterable[LagReading]]) -> None:
        self._lag_sources.append(source)

    def set_job_counts(self, counts: Mapping[str, int], stalled: int) -> None:
        self._job_counts = dict(counts)
        self._stalled = stalled

    def watch_sse_clients(self, count: Callable[[], int]) -> None:
        self._sse_clients = count

    def render(self) -> bytes:
        """The Prometheus text exposition of every instrument."""
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        self.provider.shutdown()

    def _observe_lag(self, _: CallbackOptions) -> Iterable[Observation]:
        for source in self._lag_sources:
            for topic, partition, group, lag in source():
                yield Observation(lag, {"topic": topic, "partition": str(partition), "group": group})

    def _observe_jobs(self, _: CallbackOptions) -> Iterable[Observation]:
        for status, count in self._job_counts.items():
            yield Observation(count, {"status": status})

    def _observe_stalled(self, _: CallbackOptions) -> Iterable[Observation]:
        if self._stalled is not None:
            yield Observation(self._stalled)

    def _observe_sse(self, _: CallbackOptions) -> Iterable[Observation]:
        if self._sse_clients is not None:
            yield Observation(self._sse_clients())
