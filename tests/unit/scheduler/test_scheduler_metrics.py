"""The rescan gauges report each tenant's latest statistics to whichever reader collects."""

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from services.scheduler.metrics import RescanGauges


def _collected(reader: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    data = reader.get_metrics_data()
    if data is None:  # nothing observed at all
        return {}
    return {
        (metric.name, point.attributes["tenant"]): point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    }


def test_each_tenant_reports_watched_items_due_scans_and_savings() -> None:
    reader = InMemoryMetricReader()
    gauges = RescanGauges([reader])
    stats = {"watched_items": 10, "due_next_hour": 2, "due_next_day": 7, "scans_issued": 12, "daily_equivalent": 50}
    gauges.update([{"tenant": "acme", **stats}])

    collected = _collected(reader)
    gauges.shutdown()

    assert collected[("sluice.rescan.watched_items", "acme")] == 10
    assert collected[("sluice.rescan.due_next_hour", "acme")] == 2
    assert collected[("sluice.rescan.due_next_day", "acme")] == 7
    assert collected[("sluice.rescan.scans_issued", "acme")] == 12
    assert collected[("sluice.rescan.scans_saved", "acme")] == 38


def test_a_tenant_without_watches_drops_out() -> None:
    reader = InMemoryMetricReader()
    gauges = RescanGauges([reader])
    row = {"watched_items": 1, "due_next_hour": 0, "due_next_day": 0, "scans_issued": 0, "daily_equivalent": 0}
    gauges.update([{"tenant": "acme", **row}])
    gauges.update([])
    assert not _collected(reader)
    gauges.shutdown()
