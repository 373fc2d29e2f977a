"""Every metric Sluice exports, in one place: prometheus-client instruments on one registry per service process.

Each service makes one ``SluiceMetrics``; ``render()`` is the body of its ``/metrics`` endpoint. The Prometheus
names (what deploy/ dashboards, alerts and autoscaling use) are listed in ``PROMETHEUS_NAMES``; a unit test checks
that every metric in deploy/ is one of them.

Fleet-wide gauges count what every replica of a service sees alike (jobs by status, the backlog, the rescan
statistics): only the replica that leads its service sets them, and it clears them when it stops leading, so a sum
over pods counts each once.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from shared.gauges import ObservedGauge, SnapshotGauge
from shared.histograms import BucketHistogram

LATENCY_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

RESCAN_STATS = {
    "watched_items": "Items watched by the tenant",
    "due_next_hour": "Rescans due within the next hour",
    "due_next_day": "Rescans due within the next day",
    "scans_issued": "Item rescans issued so far",
    "scans_saved": "Item rescans saved against a fixed daily rescan",
}
"""The scheduler's per-tenant rescan statistics, each exported as ``sluice_rescan_<name>{tenant}``."""

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
    "sluice_backlog_batches": "gauge",
    **{f"sluice_rescan_{name}": "gauge" for name in RESCAN_STATS},
}
"""Prometheus name → type, as rendered (counters with ``_total``, histograms as ``_bucket``, ``_count``, ``_sum``)."""

LagReading = tuple[str, int, str, int]
"""(topic, partition, consumer group, lag in messages)."""


class LabelledCounter:
    """A prometheus-client counter, recorded with the ``add(amount, labels)`` call the services make."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self._counter = Counter(name, documentation, labelnames, registry=registry)

    def add(self, amount: float, labels: Mapping[str, object]) -> None:
        """Raises ValueError for a label set other than the counter's, rather than export a new series."""
        self._counter.labels(**labels).inc(amount)


class SluiceMetrics:
    """The instruments of one service process, each recorded by the code that knows the fact."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        registry = self.registry

        def counter(name: str, documentation: str, *labelnames: str) -> LabelledCounter:
            return LabelledCounter(name, documentation, labelnames, registry)

        self.items_processed = counter(
            "sluice_items_processed", "Items that ended, by kind and status (succeeded, failed, ...)", "kind", "status"
        )
        self.items_retried = counter("sluice_items_retried", "Items sent to a retry topic", "kind")
        # Recorded once per item, or per batch: plain bucket counters (see shared/histograms.py).
        self.handler_duration = BucketHistogram(
            "sluice_handler_duration_seconds", "One handler call, by kind and outcome", LATENCY_BUCKETS_S
        )
        self.e2e_latency = BucketHistogram(
            "sluice_item_e2e_latency_seconds", "Job submitted → item result durable in Postgres, by kind",
            LATENCY_BUCKETS_S,
        )  # fmt: skip
        self.jobs_finished = counter("sluice_jobs_finished", "Jobs that ended, by status", "status")
        self.dead_letters = counter(
            "sluice_dead_letters", "Messages indexed from a dead-letter topic, by topic and error type",
            "topic", "error_type",
        )  # fmt: skip
        self.rate_limited = counter(
            "sluice_rate_limited_requests", "Requests refused by a rate limit, by tenant and limit", "tenant", "limit"
        )
        self.webhook_deliveries = counter(
            "sluice_webhook_deliveries", "Webhook delivery attempts, by outcome", "outcome"
        )
        self.dependency_calls = counter(
            "sluice_dependency_calls",
            "Calls to an optional dependency (redis), by outcome: ok, failed (error or timeout), "
            "skipped (its circuit breaker open)",
            "dependency", "outcome",
        )  # fmt: skip
        self._tenant_in_flight = Gauge(
            "sluice_tenant_in_flight", "Items of a tenant being processed now", ["tenant"], registry=registry
        )
        self._tenant_waiting = Gauge(
            "sluice_tenant_waiting", "Items of a tenant waiting for capacity", ["tenant"], registry=registry
        )
        self._lag = ObservedGauge(
            "sluice_consumer_lag", "Fetch high-water mark minus committed offset", ("topic", "partition", "group")
        )
        self._sse_clients = ObservedGauge("sluice_sse_clients", "Open live-progress streams on this intake")
        self._jobs = SnapshotGauge("sluice_jobs", "Jobs by status", ("status",))
        self._stalled = SnapshotGauge("sluice_jobs_stalled", "Running jobs with no result in the window")
        self._backlog = SnapshotGauge(
            "sluice_backlog_batches",
            "Task batches not yet released to the tasks topics, by priority (batches of jobs waiting for a slot "
            "excluded)",
            ("priority",),
        )
        self._rescan = {
            name: SnapshotGauge(f"sluice_rescan_{name}", documentation, ("tenant",))
            for name, documentation in RESCAN_STATS.items()
        }
        for collector in (self.handler_duration, self.e2e_latency, self._lag, self._sse_clients, self._jobs,
                          self._stalled, self._backlog, *self._rescan.values()):  # fmt: skip
            registry.register(collector)
        self._exposition = _WithoutCreatedSeries(registry)

    # Recording helpers for facts other branches produce (tenancy and flow control).
    def set_tenant_load(self, tenant: str, *, in_flight: int, waiting: int) -> None:
        self._tenant_in_flight.labels(tenant=tenant).set(in_flight)
        self._tenant_waiting.labels(tenant=tenant).set(waiting)

    def clear_tenant_load(self) -> None:
        """Stop exporting every tenant's load: the dispatcher leader exports it, and only while it leads."""
        self._tenant_in_flight.clear()
        self._tenant_waiting.clear()

    def count_rate_limited(self, tenant: str, limit: str) -> None:
        self.rate_limited.add(1, {"tenant": tenant, "limit": limit})

    def count_dependency_call(self, dependency: str, outcome: str) -> None:
        self.dependency_calls.add(1, {"dependency": dependency, "outcome": outcome})

    def watch_lag(self, source: Callable[[], Iterable[LagReading]]) -> None:
        def samples() -> Iterator[tuple[tuple[str, str, str], float]]:
            for topic, partition, group, lag in source():
                yield (topic, str(partition), group), lag

        self._lag.watch(samples)

    def watch_sse_clients(self, count: Callable[[], int]) -> None:
        self._sse_clients.watch(lambda: [((), count())])

    # Fleet-wide gauges: set by the leading replica only, cleared when it stops leading (absent, not frozen).
    def set_job_counts(self, counts: Mapping[str, int], stalled: int) -> None:
        self._jobs.set({(status,): count for status, count in counts.items()})
        self._stalled.set({(): stalled})

    def clear_job_counts(self) -> None:
        self._jobs.clear()
        self._stalled.clear()

    def set_backlog(self, batches: Mapping[str, int]) -> None:
        """Unreleased batches per priority (every priority, 0 included)."""
        self._backlog.set({(priority,): count for priority, count in batches.items()})

    def clear_backlog(self) -> None:
        self._backlog.clear()

    def set_rescan_stats(self, by_tenant: Mapping[str, Mapping[str, int]]) -> None:
        """Per tenant, a value for each of RESCAN_STATS; a tenant left out is no longer exported."""
        for name, gauge in self._rescan.items():
            gauge.set({(tenant,): stats[name] for tenant, stats in by_tenant.items()})

    def clear_rescan_stats(self) -> None:
        for gauge in self._rescan.values():
            gauge.clear()

    def render(self) -> bytes:
        """The Prometheus text exposition of every instrument."""
        return generate_latest(self._exposition)


class _WithoutCreatedSeries(Collector):
    """The registry's families without the ``<name>_created`` samples prometheus-client adds to each counter: a
    second series per counter that nothing here reads (dashboards, alerts and scalers use ``rate``/``increase``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [sample for sample in family.samples if not sample.name.endswith("_created")]
            yield kept
