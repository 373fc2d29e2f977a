"""Throughput with tracing on vs off: the real services, one bench.noop job per run, alternating modes.

"on" exports every span (HTTP, Kafka hops, batch, item, write, completion) over OTLP/HTTP to a loopback receiver,
as production exports to a collector; "on_failed_items" is the same with SLUICE_PROCESSOR_ITEM_SPANS=failed (no
span for an item that succeeds); "off" has no exporter configured, so no batch or item spans are made.
Run with ``make overhead``; prints one JSON line.
Environment: SLUICE_OVERHEAD_ITEMS (default 40000), SLUICE_OVERHEAD_ROUNDS (default 2 per mode).
"""

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from services.ops.devstack.postgres import quote_ident, with_database
from tests.support import infra
from tests.support.otlp import receiving_spans
from tests.support.pipeline import Pipeline, wait_for_status


async def _database(server_url: str, name: str, *, drop: bool = False) -> str:
    connection = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        verb = (
            f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)"
            if drop
            else f"CREATE DATABASE {quote_ident(name)}"
        )
        await connection.execute(verb)
    finally:
        await connection.close()
    return with_database(server_url, name)


async def one_run(kafka: str, pg: str, redis: str, mode: str, items: int, workdir: Path) -> dict[str, float]:
    suffix = uuid.uuid4().hex[:8]
    database = await _database(pg, f"sluice_overhead_{suffix}")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka, "DATABASE_URL": database, "REDIS_URL": redis,
        "SLUICE_KAFKA_TOPIC_PREFIX": f"overhead{suffix}", "SLUICE_KAFKA_TASK_PARTITIONS": "4",
        "SLUICE_KAFKA_RESULT_PARTITIONS": "4", "SLUICE_PROCESSOR_GROUP_ID": f"p-{suffix}",
        "SLUICE_AGGREGATOR_GROUP_ID": f"a-{suffix}", "SLUICE_INTAKE_REQUESTS_GROUP_ID": f"i-{suffix}",
    }  # fmt: skip
    with receiving_spans() as sink:
        if mode != "off":
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint
        if mode == "on_failed_items":
            env["SLUICE_PROCESSOR_ITEM_SPANS"] = "failed"
        pipeline = Pipeline(env, workdir / f"services-{suffix}.log").start()
        try:
            body = b"".join(json.dumps({"n": n}).encode() + b"\n" for n in range(items))
            async with pipeline.client() as client:
                started = time.perf_counter()
                response = await client.post("/v1/jobs", params={"kind": "bench.noop"}, content=body,
                                             headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
                response.raise_for_status()
                final = await wait_for_status(client, response.json()["job_id"], timeout=900)
                elapsed = time.perf_counter() - started
            assert final["status"] == "completed", final
        finally:
            pipeline.stop()
        spans = len(sink.snapshot())
    await _database(pg, f"sluice_overhead_{suffix}", drop=True)
    return {"seconds": round(elapsed, 2), "items_per_s": round(items / elapsed, 1), "spans_received": spans}


async def main() -> None:
    items = int(os.environ.get("SLUICE_OVERHEAD_ITEMS", "40000"))
    rounds = int(os.environ.get("SLUICE_OVERHEAD_ROUNDS", "2"))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with infra.kafka(workdir) as kafka, infra.postgres(workdir) as pg, infra.redis(workdir) as redis:
            runs: dict[str, list[dict[str, float]]] = {"off": [], "on": [], "on_failed_items": []}
            for _ in range(rounds):
                for mode in runs:
                    runs[mode].append(await one_run(kafka, pg, redis, mode, items, workdir))
                    sys.stderr.write(f"{mode}: {runs[mode][-1]}\n")
    median = {mode: statistics.median(r["items_per_s"] for r in results) for mode, results in runs.items()}
    summary = {
        "items_per_job": items,
        "rounds": rounds,
        "items_per_s_median": median,
        "overhead_percent": {
            mode: round(100 * (1 - median[mode] / median["off"]), 1) for mode in ("on", "on_failed_items")
        },
        "runs": runs,
    }
    print(json.dumps(summary))  # noqa: T201 - the script's output


if __name__ == "__main__":
    asyncio.run(main())
