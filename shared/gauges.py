"""Gauge families a service sets as a whole or reads when scraped: custom prometheus-client collectors.

``SnapshotGauge`` holds the latest values someone counted (jobs by status, the backlog) and renders nothing once
cleared, so a replica that stops counting stops exporting instead of repeating its last values.
``ObservedGauge`` asks its sources at each scrape (consumer lag, open streams). Neither renders a family without
samples.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector

Samples = Iterable[tuple[Sequence[str], float]]
"""(label values, in the family's label order; value)."""


class SnapshotGauge(Collector):
    """One gauge family whose samples are replaced together (``set``) or dropped (``clear``)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        self._name, self._documentation, self._labelnames = name, documentation, tuple(labelnames)
        self._samples: dict[tuple[str, ...], float] = {}

    def set(self, samples: Mapping[tuple[str, ...], float]) -> None:
        """Export exactly these samples: label sets not given are no longer exported."""
        self._samples = dict(samples)  # one assignment: a scrape sees the old samples or the new, never a mix

    def clear(self) -> None:
        self._samples = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        samples = self._samples
        if samples:
            family = GaugeMetricFamily(self._name, self._documentation, labels=self._labelnames)
            for labels, value in samples.items():
                family.add_metric(labels, value)
            yield family


class ObservedGauge(Collector):
    """One gauge family read from its sources whenever it is scraped."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        self._name, self._documentation, self._labelnames = name, documentation, tuple(labelnames)
        self._sources: list[Callable[[], Samples]] = []

    def watch(self, source: Callable[[], Samples]) -> None:
        self._sources.append(source)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for source in self._sources:
            for labels, value in source():
                family.add_metric(labels, value)
        if family.samples:
            yield family
