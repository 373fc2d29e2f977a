"""`python -m bench [--items N ...]`: run every scenario; the last line printed is the summary JSON."""

import asyncio
import json
import logging
import os
import signal
import sys
import uuid
from dataclasses import asdict
from statistics import median
from typing import Any

import httpx
import uvloop
from pydantic import JsonValue

from bench import ceilings, fairness, scenarios
from bench.config import BenchConfig, parse_config
from bench.http import LeanClient
from bench.measure import RssSampler, machine_quiet, service_name
from bench.report import (
    cpu_speed_us,
    cpu_steal_pct,
    cpu_times,
    machine_info,
    save,
    summary,
    table,
    two_process_speedup,
)
from bench.stack import BenchStack, bench_stack
from services.intake.settings import IntakeSettings
from services.ops.devstack.brokers import BrokerChoice
from services.ops.devstack.process import Paused, process_listening_on
from shared.config import KafkaSettings, PostgresSettings
from shared.kinds import load_kinds
from shared.postgres import open_pool
from shared.stores.tenants import TenantStore

log = logging.getLogger("sluice.bench")

BENCH_TENANT = "bench"
BENCH_PLAN: dict[str, JsonValue] = {
    "requests_per_minute": 1_000_000, "max_active_jobs": 100_000, "max_waiting_jobs": 1_000_000,
    "max_items_per_job": 100_000_000, "max_batch_size": 1000,
}  # fmt: skip
"""One tenant whose plan lets the load through: the benchmark measures the pipeline, not a tenant's limits
(fair share and the per-tenant in-flight cap stay at their defaults)."""


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def run_all(stack: BenchStack, config: BenchConfig) -> dict[str, Any]:
    kafka = KafkaSettings(bootstrap_servers=stack.kafka, topic_prefix=stack.topic_prefix)
    batch_size = load_kinds()["bench.noop"].batch_size or IntakeSettings().batch_size  # as intake splits the job
    say(f"ceilings: aiokafka produce + consume of {config.items:,} items, COPY of {config.items:,} rows ...")
    broker_items_per_s, messages = await ceilings.broker_ceiling(
        kafka, f"{stack.topic_prefix}.ceiling-{uuid.uuid4().hex[:6]}", config.items, batch_size
    )
    pg_rows_per_s = await ceilings.postgres_ceiling(stack.database_url, config.items)
    pool = await open_pool(PostgresSettings(url=stack.database_url, pool_min=1, pool_max=4))
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)  # reused, not reopened per request
    key = (await TenantStore(pool).key_for(BENCH_TENANT, BENCH_PLAN)).token
    auth = {"Authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(
            base_url=stack.intake_url, timeout=600, limits=limits, trust_env=False, headers=auth
        ) as client:
            say(f"warm-up: {config.warmup_items:,} bench.noop items ...")
            warmup = await scenarios.throughput(stack, client, pool, config.warmup_items, config.timeout_s)
            say(f"scenario 1: {config.items:,} bench.noop items ...")
            # The broker's own cost, beside the services': on Apache Kafka a JVM shares the two cores.
            with RssSampler({f"broker-{i}": pid for i, pid in enumerate(stack.broker_pids, 1)}) as broker_use:
                throughput = await scenarios.throughput(stack, client, pool, config.items, config.timeout_s)
            redis_hung = await _throughput_with_redis_hung(stack, client, pool, config)
            latency_waited_s = await machine_quiet(timeout_s=config.quiet_timeout_s)
            say(f"scenario 2: {config.latency_job_items}-item jobs at {config.latency_items_per_s:,} items/s "
                f"for {config.latency_s:g} s ...")  # fmt: skip
            url = httpx.URL(stack.intake_url)
            lean = LeanClient(url.host, url.port or 80, auth)
            try:
                latency = await scenarios.latency(
                    lean, pool, config.latency_items_per_s, config.latency_job_items, config.latency_s, config.timeout_s
                )
            finally:
                await lean.close()
            settled_s = await machine_quiet(timeout_s=config.quiet_timeout_s)
            say(f"scenario 3: bench.cpu {config.cpu_items:,} items in batches of {config.cpu_batch_size}, "
                f"{config.cpu_repeats} rounds of a run with 1 processor, then one with 2 ...")  # fmt: skip
            scale_out = await scenarios.scale_out(
                stack,
                client,
                pool,
                config.cpu_items,
                config.cpu_rounds,
                config.timeout_s,
                config.cpu_repeats,
                machine_speedup=lambda: asyncio.to_thread(two_process_speedup, pairs=1),
            )
            shares = await _fair_shares(client, pool, config)
    finally:
        await pool.close()
    results: dict[str, Any] = {
        "config": {k: str(v) if not isinstance(v, int | float) else v for k, v in asdict(config).items()},
        "ceilings": {
            "broker_items_per_s": broker_items_per_s,
            "broker_messages": messages,
            "batch_size": batch_size,
            "pg_rows_per_s": pg_rows_per_s,
        },
        "warmup": _by_service(asdict(warmup)),
        "throughput": _by_service(asdict(throughput)),
        "broker": {
            "name": stack.broker,
            "nodes": len(stack.broker_pids),
            "rss_mb": round(sum(broker_use.peaks_mb.values()), 1),
            "cpu_us_per_item": round(sum(broker_use.cpu_s.values()) * 1e6 / config.items, 1),
        },
        "redis_hung": _by_service(asdict(redis_hung)) if redis_hung else None,
        "latency": {**asdict(latency), "waited_for_quiet_s": latency_waited_s},
        "scale_out": {
            **asdict(scale_out),
            "waited_for_quiet_s": settled_s,
            "machine_speedup": round(median(scale_out.machine_speedups), 2),
        },
        "fair_share": [asdict(share) for share in shares] if shares else None,
    }
    return results


FAIR_WEIGHTS = ((1, 1), (1, 2))


async def _fair_shares(client: httpx.AsyncClient, pool: Any, config: BenchConfig) -> list[fairness.Share]:
    """Two tenants backlogged at once, with each pair of weights (none when --fair-batches is 0)."""
    shares = []
    for weights in FAIR_WEIGHTS if config.fair_batches else ():
        say(f"fair share: two tenants of weights {weights[0]}:{weights[1]}, {config.fair_batches:,} batches each ...")
        shares.append(await fairness.share(client, pool, weights, config.fair_batches, config.timeout_s))
    return shares


async def _throughput_with_redis_hung(
    stack: BenchStack, client: httpx.AsyncClient, pool: Any, config: BenchConfig
) -> scenarios.Throughput | None:
    """Scenario 1 while Redis hangs: the services skip it behind their circuit breakers (None when not run)."""
    if not config.redis_hung_items:
        return None
    if "redis" not in stack.embedded:
        say("scenario 1 with Redis hung: skipped, the Redis in use is yours, not the bench's to pause")
        return None
    say(f"scenario 1 with Redis hung (SIGSTOP): {config.redis_hung_items:,} bench.noop items ...")
    with Paused(process_listening_on(stack.redis_port)):
        return await scenarios.throughput(stack, client, pool, config.redis_hung_items, config.timeout_s)


def _by_service(result: dict[str, Any]) -> dict[str, Any]:
    """Per-process figures keyed by service name (the first process of each)."""
    for key in ("rss_mb", "cpu_us_per_item"):
        result[key] = {service_name(label): value for label, value in result[key].items() if "#" not in label}
    return result


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the stack, so the services and the embedded broker are stopped


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_config(argv)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = config.data_dir / "services.log"
    say(f"starting the stack (service logs: {log_path}) ...")
    broker = BrokerChoice("kafka" if config.broker == "kafka" else "tansu", config.brokers)
    with bench_stack(config.data_dir, os.environ, log_path, config.cpu_batch_size, broker) as stack:
        say(f"stack up: intake {stack.intake_url}, embedded: {', '.join(sorted(stack.embedded)) or 'none'}")
        machine = machine_info(stack.embedded)
        before = cpu_times()
        results = uvloop.run(run_all(stack, config))
        machine["cpu_steal_pct"] = cpu_steal_pct(before, cpu_times())
        machine["sha256_us_after"] = cpu_speed_us()
    results["machine"] = machine
    results["summary"] = summary(results)
    path = save(results, config.results_dir)
    say("")
    say(table(results))
    say(f"results: {path}")
    say(json.dumps(results["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
