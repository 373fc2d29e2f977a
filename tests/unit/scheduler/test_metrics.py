"""The scheduler's rescan statistics become the sluice_rescan_* gauges, one series per tenant."""

from prometheus_client.parser import text_string_to_metric_families

from services.scheduler.metrics import rescan_stats
from shared.metrics import SluiceMetrics

ROW = {"watched_items": 10, "due_next_hour": 2, "due_next_day": 7, "scans_issued": 12, "daily_equivalent": 50}


def _rescan_samples(metrics: SluiceMetrics) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels["tenant"]): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
        if sample.name.startswith("sluice_rescan_")
    }


def test_each_tenant_reports_watched_items_due_scans_and_savings() -> None:
    metrics = SluiceMetrics()
    metrics.set_rescan_stats(rescan_stats([{"tenant": "acme", **ROW}]))

    assert _rescan_samples(metrics) == {
        ("sluice_rescan_watched_items", "acme"): 10,
        ("sluice_rescan_due_next_hour", "acme"): 2,
        ("sluice_rescan_due_next_day", "acme"): 7,
        ("sluice_rescan_scans_issued", "acme"): 12,
        ("sluice_rescan_scans_saved", "acme"): 38,
    }


def test_a_tenant_without_watches_drops_out() -> None:
    metrics = SluiceMetrics()
    metrics.set_rescan_stats(rescan_stats([{"tenant": "acme", **ROW}, {"tenant": "globex", **ROW}]))
    metrics.set_rescan_stats(rescan_stats([{"tenant": "globex", **ROW}]))

    assert {tenant for _, tenant in _rescan_samples(metrics)} == {"globex"}


def test_cleared_statistics_are_absent_not_frozen() -> None:
    metrics = SluiceMetrics()
    metrics.set_rescan_stats(rescan_stats([{"tenant": "acme", **ROW}]))
    metrics.clear_rescan_stats()

    assert _rescan_samples(metrics) == {}
