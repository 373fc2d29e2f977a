"""`make bench` kept working: a small run end to end on the suite's broker, PostgreSQL and Redis (never timed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import SUMMARY_KEYS

pytestmark = pytest.mark.e2e

SMOKE_ARGS = [
    "--items", "20000", "--warmup-items", "1000", "--redis-hung-items", "5000",
    "--latency-s", "2", "--latency-items-per-s", "300", "--latency-job-items", "10",
    "--cpu-items", "240", "--cpu-rounds", "200", "--cpu-batch-size", "40", "--cpu-repeats", "2",
    "--fair-batches", "800", "--quiet-timeout-s", "5",
]  # fmt: skip


def test_a_small_bench_run_ends_with_the_summary_line_and_every_item_stored(
    kafka_address: str, postgres_server_url: str, tmp_path: Path
) -> None:
    # No REDIS_URL: the bench starts a Redis of its own, which it may pause for scenario 1 with Redis hung.
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_address, "DATABASE_URL": postgres_server_url}
    run = subprocess.run(
        [sys.executable, "-m", "bench", *SMOKE_ARGS, "--results-dir", str(tmp_path / "results"),
         "--data-dir", str(tmp_path / "data")],
        env={**_inherited(), **env}, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert tuple(summary) == SUMMARY_KEYS
    assert set(summary["rss_mb"]) == {"intake", "processor", "aggregator", "scheduler"}
    assert all(value > 0 for value in summary["rss_mb"].values())
    (saved,) = (tmp_path / "results").glob("*.json")
    results = json.loads(saved.read_text())
    assert results["throughput"]["items"] == 20000  # the run itself fails unless every row is stored
    assert results["redis_hung"]["items"] == 5000 and summary["redis_hung_items_per_s"] > 0
    assert results["latency"]["items"] == results["latency"]["jobs"] * 10
    assert results["summary"] == summary
    scale_out = results["scale_out"]
    assert (len(scale_out["one_processor_runs"]), len(scale_out["two_processors_runs"])) == (2, 2)
    assert scale_out["batches"] == 240 // 40  # --cpu-batch-size reached intake (its own default is 50)
    # the VM's own two-process speedup, read before each round, and the pipeline's share of it
    assert len(scale_out["machine_speedups"]) == 2 and min(scale_out["machine_speedups"]) > 0
    assert scale_out["share_of_machine"] > 0
    assert results["machine"]["cpus"] >= 1
    # two tenants backlogged at once, weights 1:1 then 1:2: a share of what the dispatcher released (not asserted)
    shares = results["fair_share"]
    assert [(share["weights"], share["batches"]) for share in shares] == [([1, 1], 800), ([1, 2], 800)]
    assert all(0 <= share["b_share"] <= 1 for share in shares if share["releases"])


def _inherited() -> dict[str, str]:
    """Our environment without settings that would point the run elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SLUICE_", "KAFKA_", "DATABASE_", "REDIS_"))}
