"""Benchmark sizes: every one settable by a flag or a SLUICE_BENCH_* variable (flags win)."""

import argparse
import os
from dataclasses import dataclass, fields
from pathlib import Path

from shared.config import FlowSettings
from sluice.contracts.events import MAX_BATCH_SIZE


@dataclass(frozen=True)
class BenchConfig:
    broker: str = "tansu"
    """The broker the bench starts when KAFKA_BOOTSTRAP_SERVERS names none: tansu or kafka (Apache Kafka from
    Maven Central; needs Java 17+ and Maven). `make bench BROKER=kafka`."""
    brokers: int = 1
    """Apache Kafka nodes (a KRaft cluster of three: BROKERS=3)."""
    items: int = 1_000_000
    """Scenario 1: items in the one bench.noop NDJSON job (also the size of both ceilings)."""
    redis_hung_items: int = 1_000_000
    """Scenario 1 again, with this many items, while the stack's own Redis is hung (SIGSTOP); 0 skips it. Only
    where the bench started Redis itself: a Redis of yours is never paused."""
    warmup_items: int = 10_000
    """A first, small bench.noop job: warms the services and gives the RSS to compare the big job's with."""
    latency_s: float = 30.0
    """Scenario 2: how long small jobs are submitted."""
    latency_items_per_s: int = 2_000
    latency_job_items: int = 10
    cpu_items: int = 4_000
    """Scenario 3: items of the bench.cpu job, run with 1 and then 2 processors."""
    cpu_rounds: int = 2_000
    cpu_batch_size: int = 100
    """Scenario 3: items per bench.cpu batch (the bench stack's SLUICE_INTAKE_BATCH_SIZE; bench.noop declares its
    own). Every batch costs the rest of the pipeline about the same CPU whatever its items do (in Tansu, the
    aggregator, PostgreSQL and intake), which two processors must share the two cores with, so bigger batches
    leave the pipeline more of the machine's two-process speedup (figures: docs/performance.md)."""
    cpu_repeats: int = 5
    """Scenario 3 runs the job this many rounds, each once with one processor and then once with two, and
    reports the median of the rounds' speedups: the per-core speed of a shared VM swings from minute to minute."""
    fair_batches: int = 2_000
    """Fair share: batches (of 10 bench.noop items) in each of two tenants' jobs, run with weights 1:1 and then 1:2;
    0 skips it. More than the flow window (SLUICE_FLOW_WINDOW_BATCHES), or the first job never has a backlog."""
    quiet_timeout_s: float = 120.0
    """Scenarios 2 and 3 start once the machine has been quiet for 3 s (what scenario 1 left running, such as
    PostgreSQL's autovacuum, is done), or after this long."""
    timeout_s: float = 600.0
    """Give up on any one job after this long."""
    results_dir: Path = Path("bench/results")
    data_dir: Path = Path(".sluice/bench")


def _env_name(name: str) -> str:
    return f"SLUICE_BENCH_{name.upper()}"


def parse_config(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> BenchConfig:
    """Defaults, overridden by SLUICE_BENCH_<NAME>, overridden by --<name>."""
    environ = dict(os.environ) if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    defaults = BenchConfig()
    for spec in fields(BenchConfig):
        default = getattr(defaults, spec.name)
        kind = type(default)
        raw = environ.get(_env_name(spec.name))
        parser.add_argument(
            f"--{spec.name.replace('_', '-')}",
            type=kind,
            default=kind(raw) if raw is not None else default,
            help=f"(env {_env_name(spec.name)}; default {default})",
        )
    args = parser.parse_args(argv)
    config = BenchConfig(**{spec.name: getattr(args, spec.name) for spec in fields(BenchConfig)})
    if config.broker not in ("tansu", "kafka"):
        parser.error(f"--broker must be tansu or kafka, not {config.broker}")
    if config.brokers < 1 or (config.broker == "tansu" and config.brokers != 1):
        parser.error("--brokers must be 1 with tansu, and at least 1 with kafka")
    if config.redis_hung_items < 0:
        parser.error("--redis-hung-items must be 0 (skip) or more")
    if min(config.items, config.warmup_items, config.cpu_items, config.latency_job_items, config.cpu_repeats) < 1:
        parser.error("item counts and repeats must be at least 1")
    if not 1 <= config.cpu_batch_size <= MAX_BATCH_SIZE:
        parser.error(f"--cpu-batch-size must be from 1 to {MAX_BATCH_SIZE}, not {config.cpu_batch_size}")
    window = FlowSettings().window_batches
    if config.fair_batches and config.fair_batches <= window:
        parser.error(f"--fair-batches must be 0 (skip) or more than the flow window of {window} batches")
    return config
