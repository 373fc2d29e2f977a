import math

import pytest

from bench.config import BenchConfig, parse_config
from bench.measure import percentile, service_name
from bench.report import SUMMARY_KEYS, summary


def test_percentiles_use_the_nearest_rank():
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50, 95, 99)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_the_summary_has_exactly_the_issue_keys_and_divides_by_the_lower_ceiling():
    results = {
        "throughput": {"items_per_s": 50_000.0, "time_to_first_result_ms": 120.0, "rss_mb": {"intake": 80.0}},
        "latency": {"e2e_p50_ms": 40.0, "e2e_p95_ms": 90.0, "e2e_p99_ms": 150.0, "intake_p99_ms": 20.0},
        "ceilings": {"broker_items_per_s": 400_000.0, "pg_rows_per_s": 200_000.0},
        "scale_out": {"speedup": 1.8},
    }
    line = summary(results)
    assert tuple(line) == SUMMARY_KEYS
    assert line["ratio_to_ceiling"] == 0.25
    assert line["rss_mb"] == {"intake": 80.0}


def test_sizes_come_from_flags_over_environment_over_defaults():
    config = parse_config(["--items", "20000"], {"SLUICE_BENCH_ITEMS": "5", "SLUICE_BENCH_LATENCY_S": "3"})
    assert (config.items, config.latency_s, config.cpu_items) == (20000, 3.0, BenchConfig().cpu_items)


def test_an_item_count_below_one_is_refused():
    with pytest.raises(SystemExit):
        parse_config(["--items", "0"], {})


@pytest.mark.parametrize("size", ["0", "1001"])
def test_a_cpu_batch_size_intake_would_refuse_is_refused_before_the_stack_starts(size: str) -> None:
    with pytest.raises(SystemExit):
        parse_config(["--cpu-batch-size", size], {})


def test_a_second_process_reports_under_its_service_name():
    assert (service_name("processor#2"), service_name("intake")) == ("processor", "intake")
