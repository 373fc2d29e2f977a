"""SluiceMetrics renders plain prometheus-client families: the names and label sets the dashboards read, nothing
more, and fleet-wide gauges that disappear when cleared."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.metrics import SluiceMetrics


def _samples(metrics: SluiceMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def test_a_counter_renders_its_total_per_label_set_without_a_created_series() -> None:
    metrics = SluiceMetrics()
    metrics.items_processed.add(2, {"kind": "bench.noop", "status": "succeeded"})
    metrics.items_processed.add(3, {"kind": "bench.noop", "status": "succeeded"})
    metrics.items_processed.add(1, {"kind": "bench.noop", "status": "failed"})

    text = metrics.render().decode()

    assert 'sluice_items_processed_total{kind="bench.noop",status="succeeded"} 5.0' in text
    assert 'sluice_items_processed_total{kind="bench.noop",status="failed"} 1.0' in text
    assert "_created" not in text


def test_a_counter_refuses_a_label_set_other_than_its_own() -> None:
    metrics = SluiceMetrics()
    with pytest.raises(ValueError):
        metrics.items_processed.add(1, {"kind": "bench.noop"})


def test_lag_and_stream_gauges_are_read_at_each_scrape() -> None:
    metrics = SluiceMetrics()
    lag = [("sluice.tasks", 0, "sluice-processor", 3)]
    metrics.watch_lag(lambda: lag)
    metrics.watch_sse_clients(lambda: len(lag))
    first = _samples(metrics)
    lag.append(("sluice.tasks", 1, "sluice-processor", 5))

    second = _samples(metrics)

    partition_1 = ("sluice_consumer_lag", frozenset({("topic", "sluice.tasks"), ("partition", "1"),
                                                     ("group", "sluice-processor")}))  # fmt: skip
    assert partition_1 not in first and second[partition_1] == 5
    assert (first[("sluice_sse_clients", frozenset())], second[("sluice_sse_clients", frozenset())]) == (1, 2)


def test_job_counts_replace_each_other_and_vanish_when_cleared() -> None:
    metrics = SluiceMetrics()
    metrics.set_job_counts({"queued": 2, "running": 1}, stalled=1)
    metrics.set_job_counts({"running": 3}, stalled=0)
    replaced = _samples(metrics)
    metrics.clear_job_counts()

    assert {name for name, _ in replaced if name.startswith("sluice_jobs")} == {"sluice_jobs", "sluice_jobs_stalled"}
    assert replaced[("sluice_jobs", frozenset({("status", "running")}))] == 3
    assert ("sluice_jobs", frozenset({("status", "queued")})) not in replaced
    assert not {name for name, _ in _samples(metrics) if name.startswith("sluice_jobs")}


def test_the_backlog_is_exported_per_priority_until_cleared() -> None:
    metrics = SluiceMetrics()
    metrics.set_backlog({"high": 0, "normal": 4, "bulk": 1})
    exported = {dict(labels)["priority"]: value for (name, labels), value in _samples(metrics).items()
                if name == "sluice_backlog_batches"}  # fmt: skip
    metrics.clear_backlog()

    assert exported == {"high": 0, "normal": 4, "bulk": 1}
    assert "sluice_backlog_batches" not in metrics.render().decode()
