"""The three pipeline scenarios: throughput of one big job, latency under steady load, scale-out."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from statistics import median

import asyncpg
import httpx

from bench import jobs
from bench.http import LeanClient
from bench.measure import RssSampler, percentile
from bench.stack import BenchStack


@dataclass(frozen=True)
class Throughput:
    items: int
    seconds: float
    items_per_s: float
    time_to_first_result_ms: float
    upload_s: float
    """First byte sent → intake's 202 (every batch acknowledged by the broker)."""
    rss_mb: dict[str, float]
    cpu_us_per_item: dict[str, float]
    """CPU time each service used during the run, per item."""


async def throughput(
    stack: BenchStack, client: httpx.AsyncClient, pool: asyncpg.Pool, items: int, timeout: float
) -> Throughput:
    """One bench.noop job of `items`, as NDJSON: first byte sent → job completed with every row durable."""
    with RssSampler(stack.pids()) as rss:
        upload = await jobs.upload_ndjson(client, "bench.noop", items)
        done_at = await jobs.wait_until_finished(pool, [upload.job_id], timeout)
    stored = await jobs.stored_results(pool, [upload.job_id])
    if stored != items:
        raise RuntimeError(f"throughput job {upload.job_id}: {stored} result rows for {items} items")
    first = await jobs.first_result_at(pool, upload.job_id)
    seconds = done_at - upload.first_byte_at
    return Throughput(
        items=items,
        seconds=round(seconds, 3),
        items_per_s=round(items / seconds, 1),
        time_to_first_result_ms=round((first - upload.first_byte_at) * 1000, 1),
        upload_s=round(upload.answered_at - upload.first_byte_at, 3),
        rss_mb=rss.peaks_mb,
        cpu_us_per_item={label: round(cpu * 1e6 / items, 1) for label, cpu in rss.cpu_s.items()},
    )


@dataclass(frozen=True)
class Latency:
    jobs: int
    items: int
    offered_items_per_s: float
    achieved_items_per_s: float
    e2e_p50_ms: float
    e2e_p95_ms: float
    e2e_p99_ms: float
    intake_p50_ms: float
    intake_p99_ms: float


async def latency(
    client: LeanClient,
    pool: asyncpg.Pool,
    rate_items_per_s: int,
    job_items: int,
    duration_s: float,
    timeout: float,
) -> Latency:
    """Small bench.noop jobs sent on a fixed schedule (open loop: a slow answer does not delay the next send)."""
    interval = job_items / rate_items_per_s
    started = time.perf_counter()
    sends: list[asyncio.Task[jobs.Submitted]] = []
    while (due := started + len(sends) * interval) < started + duration_s:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        first_index = len(sends) * job_items
        sends.append(asyncio.create_task(jobs.submit_json(client, "bench.noop", first_index, job_items)))
    submitted = await asyncio.gather(*sends)
    send_s = time.perf_counter() - started
    job_ids = [s.job_id for s in submitted]
    await jobs.wait_until_finished(pool, job_ids, timeout)
    sent_at = {s.job_id: s.sent_at for s in submitted}
    e2e_ms = [(at - sent_at[job_id]) * 1000 for job_id, at in await jobs.result_times(pool, job_ids)]
    if len(e2e_ms) != len(job_ids) * job_items:
        raise RuntimeError(f"latency: {len(e2e_ms)} result rows for {len(job_ids) * job_items} items")
    request_ms = [s.request_ms for s in submitted]
    return Latency(
        jobs=len(submitted),
        items=len(e2e_ms),
        offered_items_per_s=float(rate_items_per_s),
        achieved_items_per_s=round(len(e2e_ms) / send_s, 1),
        e2e_p50_ms=round(percentile(e2e_ms, 50), 1),
        e2e_p95_ms=round(percentile(e2e_ms, 95), 1),
        e2e_p99_ms=round(percentile(e2e_ms, 99), 1),
        intake_p50_ms=round(percentile(request_ms, 50), 1),
        intake_p99_ms=round(percentile(request_ms, 99), 1),
    )


@dataclass(frozen=True)
class ScaleOut:
    items: int
    rounds: int
    batches: int
    """How many batches intake split the job into (the bench's --cpu-batch-size)."""
    one_processor_s: float
    """Median of the runs with one processor."""
    two_processors_s: float
    speedup: float
    """Median of the rounds' speedups (each round: one run with one processor, then one with two)."""
    processor_cpu_s: dict[str, float]
    """CPU time each processor used during the two-processor runs: how evenly the work was split."""
    one_processor_runs: list[float]
    two_processors_runs: list[float]
    machine_speedups: list[float] = field(default_factory=list)
    """Each round's reading of the machine's own two-process speedup (two bare CPU-bound processes against
    one), taken just before the round's pair of runs."""
    share_of_machine: float | None = None
    """Median of the rounds' speedup over the machine's reading beside it: how much of what this machine could
    give a second process at that moment the pipeline got (None when the machine was not read)."""


async def _cpu_job(
    client: httpx.AsyncClient, pool: asyncpg.Pool, items: int, rounds: int, timeout: float
) -> tuple[float, int]:
    """The job's time from first byte to completed, and its batch count."""
    upload = await jobs.upload_ndjson(client, "bench.cpu", items, {"rounds": rounds})
    done_at = await jobs.wait_until_finished(pool, [upload.job_id], timeout)
    return round(done_at - upload.first_byte_at, 3), await jobs.total_batches(pool, upload.job_id)


async def scale_out(
    stack: BenchStack,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    items: int,
    rounds: int,
    timeout: float,
    repeats: int = 3,
    machine_speedup: Callable[[], Awaitable[float]] | None = None,
) -> ScaleOut:
    """``repeats`` rounds of the same bench.cpu job, each run once with the one processor and then once more
    after a second processor has joined the group (it leaves again at the end of the round). Pairing the runs
    keeps each comparison within seconds: the per-core speed of a shared VM drifts from minute to minute, which
    between a block of one-processor runs and a block of two-processor runs decided the result.
    With ``machine_speedup``, each round first reads what the machine itself gives a second CPU-bound process."""
    one: list[float] = []
    two: list[float] = []
    machine: list[float] = []
    cpu_s: dict[str, float] = {}
    batches = 0
    for _ in range(repeats):
        if machine_speedup is not None:
            machine.append(await machine_speedup())
        seconds, batches = await _cpu_job(client, pool, items, rounds, timeout)
        one.append(seconds)
        second = stack.start_service("processor")
        await stack.settled(["processor", second])
        with RssSampler({label: stack.pids()[label] for label in ("processor", second)}) as sampler:
            two.append((await _cpu_job(client, pool, items, rounds, timeout))[0])
        for label, used in sampler.cpu_s.items():
            key = "processor" if label == "processor" else "processor#2"
            cpu_s[key] = round(cpu_s.get(key, 0.0) + used, 2)
        stack.stop_service(second)
        await stack.settled(["processor"])
    speedups = [a / b for a, b in zip(one, two, strict=True)]
    share = round(median(s / m for s, m in zip(speedups, machine, strict=True)), 2) if machine else None
    speedup = round(median(speedups), 2)
    return ScaleOut(items, rounds, batches, median(one), median(two), speedup, cpu_s, one, two, machine, share)
