"""What a run reports: the summary line's exact keys, a table for humans, and the saved results file."""

import hashlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

SUMMARY_KEYS = (
    "broker", "items_per_s", "time_to_first_result_ms", "e2e_p50_ms", "e2e_p95_ms", "e2e_p99_ms", "intake_p99_ms",
    "broker_ceiling_items_per_s", "pg_ceiling_rows_per_s", "ratio_to_ceiling", "scaleout_speedup", "rss_mb",
    "redis_hung_items_per_s", "redis_hung_over_up", "scaleout_share_of_machine", "broker_rss_mb",
    "broker_cpu_us_per_item",
)  # fmt: skip


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The one-line JSON the issue asks for; ratio_to_ceiling = items_per_s / min(the two ceilings)."""
    throughput, latency, ceilings = results["throughput"], results["latency"], results["ceilings"]
    floor = min(ceilings["broker_items_per_s"], ceilings["pg_rows_per_s"])
    broker = results.get("broker", {})
    return {
        "broker": broker.get("name"),
        "items_per_s": throughput["items_per_s"],
        "time_to_first_result_ms": throughput["time_to_first_result_ms"],
        "e2e_p50_ms": latency["e2e_p50_ms"],
        "e2e_p95_ms": latency["e2e_p95_ms"],
        "e2e_p99_ms": latency["e2e_p99_ms"],
        "intake_p99_ms": latency["intake_p99_ms"],
        "broker_ceiling_items_per_s": ceilings["broker_items_per_s"],
        "pg_ceiling_rows_per_s": ceilings["pg_rows_per_s"],
        "ratio_to_ceiling": round(throughput["items_per_s"] / floor, 3) if floor else math.nan,
        "scaleout_speedup": results["scale_out"]["speedup"],
        "rss_mb": dict(throughput["rss_mb"]),
        "redis_hung_items_per_s": hung["items_per_s"] if (hung := results.get("redis_hung")) else None,
        "redis_hung_over_up": round(hung["items_per_s"] / throughput["items_per_s"], 3) if hung else None,
        "scaleout_share_of_machine": results["scale_out"].get("share_of_machine"),
        "broker_rss_mb": broker.get("rss_mb"),
        "broker_cpu_us_per_item": broker.get("cpu_us_per_item"),
    }


def machine_info(embedded: frozenset[str]) -> dict[str, Any]:
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "embedded": sorted(embedded),
        "commit": _git_commit(),
        "sha256_us": cpu_speed_us(),
    }


def cpu_speed_us(rounds: int = 200_000) -> float:
    """µs per SHA-256 of 32 bytes in a Python loop: a yardstick of the core's speed at run time (on a shared VM it
    swings from hour to hour, and every number here moves with it)."""
    digest, started = b"\0" * 32, time.perf_counter()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return round((time.perf_counter() - started) * 1e6 / rounds, 3)


_BURN = "import hashlib, sys\nd = b'\\0' * 32\nfor _ in range(int(sys.argv[1])):\n    d = hashlib.sha256(d).digest()"


def _burn_s(processes: int, rounds: int) -> float:
    """Wall time of ``processes`` Python processes each running ``rounds`` chained SHA-256s at once."""
    started = time.perf_counter()
    children = [subprocess.Popen([sys.executable, "-c", _BURN, str(rounds)]) for _ in range(processes)]
    for child in children:
        child.wait()
    return time.perf_counter() - started


def two_process_speedup(rounds: int = 1_500_000, pairs: int = 3) -> float:
    """How much faster two CPU-bound processes finish twice the work of one, here and now: the most a second
    processor could add on this machine (on a shared VM, it changes by the hour). Runs in pairs, median of
    the pairs."""
    speedups = []
    for _ in range(pairs):
        one = _burn_s(1, rounds)
        speedups.append(2 * one / _burn_s(2, rounds))
    return round(statistics.median(speedups), 2)


def cpu_steal_pct(before: list[int], after: list[int]) -> float:
    """Share of CPU time the hypervisor gave to other guests between two /proc/stat readings (cpu_times())."""
    deltas = [b - a for a, b in zip(before, after, strict=True)]
    return round(100 * deltas[7] / max(sum(deltas), 1), 1) if len(deltas) > 7 else 0.0


def cpu_times() -> list[int]:
    """The machine's CPU counters from /proc/stat (empty where there is none)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            return [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return []


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except OSError:
        return ""


def _redis_hung_rows(hung: dict[str, Any] | None, up: dict[str, Any]) -> list[tuple[str, str, str]]:
    if not hung:
        return [("1b Redis hung", "not run (--redis-hung-items 0, or a Redis of yours)", "")]
    ratio = hung["items_per_s"] / up["items_per_s"]
    return [
        ("1b Redis hung", f"{hung['items']:,} bench.noop items, Redis paused", f"{hung['seconds']:.2f} s"),
        ("", "items/s end to end; against Redis up", f"{hung['items_per_s']:,.0f}; {ratio:.2f}"),
    ]


def table(results: dict[str, Any]) -> str:
    """A plain-text table of every measured number."""
    t, lat, s, c = results["throughput"], results["latency"], results["scale_out"], results["ceilings"]
    w = results["warmup"]
    per_job = lat["items"] // max(lat["jobs"], 1)
    rows = [
        ("1 throughput", f"{t['items']:,} bench.noop items (NDJSON)", f"{t['seconds']:.2f} s"),
        ("", "items/s end to end", f"{t['items_per_s']:,.0f}"),
        ("", "time to first result", f"{t['time_to_first_result_ms']:,.0f} ms"),
        ("", "upload (first byte → 202)", f"{t['upload_s']:.2f} s"),
        *_redis_hung_rows(results.get("redis_hung"), t),
        ("2 latency", f"{lat['jobs']:,} jobs × {per_job} items", f"{lat['achieved_items_per_s']:,.0f} items/s"),
        ("", "item e2e p50 / p95 / p99",
         f"{lat['e2e_p50_ms']:.0f} / {lat['e2e_p95_ms']:.0f} / {lat['e2e_p99_ms']:.0f} ms"),
        ("", "intake request p50 / p99", f"{lat['intake_p50_ms']:.0f} / {lat['intake_p99_ms']:.0f} ms"),
        ("", "waited first for a quiet machine", f"{lat.get('waited_for_quiet_s', 0):.0f} s"),
        ("3 scale-out", f"bench.cpu {s['items']:,} items × {s['rounds']} rounds in {s['batches']} batches, medians",
         f"{s['one_processor_s']:.2f} s → {s['two_processors_s']:.2f} s"),
        ("", "runs in pairs: 1 processor / 2 processors", _runs(s)),
        ("", "speedup with 2 processors, median of the pairs", f"{s['speedup']:.2f}×"),
        ("", "the machine's own: two bare CPU-bound processes vs one", _machine(s)),
        ("", "the pipeline's share of it, median of the rounds", f"{(s.get('share_of_machine') or 0) * 100:.0f} %"),
        ("", "waited first for a quiet machine", f"{s.get('waited_for_quiet_s', 0):.0f} s"),
    ]  # fmt: skip
    for i, (name, mb) in enumerate(sorted(t["rss_mb"].items())):
        sizes = f"{name} ({w['items']:,} → {t['items']:,} items)"
        rows.append(("4 peak RSS" if i == 0 else "", sizes, f"{w['rss_mb'].get(name, 0):.0f} → {mb:.0f} MB"))
    for i, (name, us) in enumerate(sorted(t["cpu_us_per_item"].items())):
        rows.append(("  CPU per item" if i == 0 else "", f"{name} (scenario 1)", f"{us:.1f} µs"))
    m = results.get("machine", {})
    b = results.get("broker", {})
    rows += [
        ("  broker", f"{b.get('name')} × {b.get('nodes')}: peak RSS, CPU per item (scenario 1)",
         f"{b.get('rss_mb', 0):.0f} MB, {b.get('cpu_us_per_item', 0):.1f} µs"),
        ("5 ceilings", "aiokafka produce + consume", f"{c['broker_items_per_s']:,.0f} items/s"),
        ("", "PostgreSQL COPY of result rows", f"{c['pg_rows_per_s']:,.0f} rows/s"),
        ("", "ratio to the lower ceiling", f"{results['summary']['ratio_to_ceiling']:.3f}"),
        *_fair_share_rows(results.get("fair_share")),
        ("machine", "µs per SHA-256, before / after the run",
         f"{m.get('sha256_us', 0):.2f} / {m.get('sha256_us_after', 0):.2f}"),
        ("", "CPU stolen by the hypervisor during the run", f"{m.get('cpu_steal_pct', 0):.1f} %"),
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c_:>{widths[2]}}" for a, b, c_ in rows)


def _fair_share_rows(shares: list[dict[str, Any]] | None) -> list[tuple[str, str, str]]:
    """Tenant B's share of the batches released while both tenants had a backlog, beside its share by weight."""
    if not shares:
        return [("6 fair share", "not run (--fair-batches 0)", "")]
    rows = []
    for i, s in enumerate(shares):
        a, b = s["weights"]
        what = f"weights {a}:{b}, {s['batches']:,} batches each: B's share of {s['releases']:,} releases"
        share = "-" if s["b_share"] is None else f"{s['b_share'] * 100:.0f} %"
        shown = f"{share} (by weight {b / (a + b) * 100:.0f} %)"
        rows.append(("6 fair share" if i == 0 else "", what, shown))
    return rows


def _machine(scale_out: dict[str, Any]) -> str:
    each = ", ".join(f"{m:.2f}" for m in scale_out.get("machine_speedups", []))
    return f"{each} (median {scale_out.get('machine_speedup', 0):.2f}×)"


def _runs(scale_out: dict[str, Any]) -> str:
    one = ", ".join(f"{t:.2f}" for t in scale_out.get("one_processor_runs", []))
    two = ", ".join(f"{t:.2f}" for t in scale_out.get("two_processors_runs", []))
    return f"{one} / {two} s"


def save(results: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bench-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return path
