"""``make simulate-rescans``: what each rescan strategy costs and how late it notices changes, without services.

10,000 watched items with a mix of volatility live through 30 simulated days. Each strategy decides scans
with the scheduler's own rules (shared.rescan_rules); a change is detected by the first scan at or after it.
Printed per strategy: scans issued, and the delay from a change to its detection (mean, p95), with the
changes still undetected at the end counted apart.

    python -m services.ops.simulate_rescans [--items 10000] [--days 30] [--seed 7]
"""

import argparse
import bisect
import random
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from shared.rescan_rules import SampleTally, adaptive_interval, sample_size, should_escalate, starting_interval

HOUR = 3600.0
DAY = 86_400.0
"""Times are in seconds, as the scheduler's rules take them."""


@dataclass(frozen=True)
class Volatility:
    name: str
    share: float
    mean_hours_between_changes: float | None
    """None: never changes."""


MIX = (
    Volatility("static", 0.55, None),
    Volatility("monthly", 0.20, 30 * DAY),
    Volatility("weekly", 0.15, 7 * DAY),
    Volatility("daily", 0.08, 1 * DAY),
    Volatility("hourly", 0.02, 3 * HOUR),
)
"""A business-listing-like mix: most pages never change, a few change several times a day."""

ADAPTIVE_MIN_S, ADAPTIVE_MAX_S = 1 * HOUR, 7 * DAY
GROUP_SIZE = 100
SAMPLE, THRESHOLD = 0.1, 0.05


@dataclass
class Item:
    volatility: str
    changes: list[float]
    """Times (seconds from the start) at which the item's meaningful output changes, ascending."""


def make_items(count: int, days: float, rng: random.Random) -> list[Item]:
    items = []
    horizon = days * DAY
    for volatility in MIX:
        for _ in range(round(count * volatility.share)):
            changes: list[float] = []
            if volatility.mean_hours_between_changes is not None:
                t = rng.expovariate(1 / volatility.mean_hours_between_changes)
                while t < horizon:
                    changes.append(t)
                    t += rng.expovariate(1 / volatility.mean_hours_between_changes)
            items.append(Item(volatility.name, changes))
    return items


def changed_between(item: Item, after: float, until: float) -> bool:
    """Whether the item changed in (after, until]."""
    index = bisect.bisect_right(item.changes, after)
    return index < len(item.changes) and item.changes[index] <= until


def fixed_daily(items: Sequence[Item], horizon: float, rng: random.Random) -> list[list[float]]:
    """Every item once a day (at a random phase, as a daily batch spread over the day would)."""
    scans = []
    for _ in items:
        t, times = rng.uniform(0, DAY), []
        while t < horizon:
            times.append(t)
            t += DAY
        scans.append(times)
    return scans


def adaptive(
    items: Sequence[Item], horizon: float, low: float = ADAPTIVE_MIN_S, high: float = ADAPTIVE_MAX_S
) -> list[list[float]]:
    """The adaptive rule as the scheduler runs it: at each rescan the interval moves by what the previous scan
    found (changed: halve; unchanged: ×1.5), within [low, high]; the submitting job is the first scan (t=0)."""
    scans = []
    for item in items:
        interval = starting_interval(low, high)
        previous_found_change = False  # the first (submitting) scan's result is "new", not "changed"
        last_scan, t, times = 0.0, interval, []
        while t < horizon:
            interval = adaptive_interval(interval, low, high, new_checks=1, new_changes=int(previous_found_change))
            times.append(t)
            previous_found_change = changed_between(item, last_scan, t)
            last_scan, t = t, t + interval
        scans.append(times)
    return scans


def sampled(items: Sequence[Item], horizon: float, rng: random.Random, mixed: bool = False) -> list[list[float]]:
    """Groups of 100 items, each of one source (so of one volatility) unless ``mixed``; daily, a 10% sample is
    rescanned and, if more than 5% of it changed since its last scan, the rest of the group too (an hour later,
    once the sample is in)."""
    scans: list[list[float]] = [[] for _ in items]
    last_scan = [0.0] * len(items)
    order = list(range(len(items)))
    if mixed:
        rng.shuffle(order)
    groups = [order[start : start + GROUP_SIZE] for start in range(0, len(items), GROUP_SIZE)]
    for group in groups:
        t = rng.uniform(0, DAY)
        while t < horizon:
            picked = rng.sample(group, sample_size(len(group), SAMPLE))
            changed = sum(changed_between(items[i], last_scan[i], t) for i in picked)
            for i in picked:
                scans[i].append(t)
                last_scan[i] = t
            if should_escalate(SampleTally(len(picked), len(picked), changed), THRESHOLD) and t + HOUR < horizon:
                for i in set(group) - set(picked):
                    scans[i].append(t + HOUR)
                    last_scan[i] = t + HOUR
            t += DAY
    return scans


@dataclass(frozen=True)
class Outcome:
    strategy: str
    scans: int
    changes: int
    detected: int
    mean_delay_s: float
    p95_delay_s: float


def measure(strategy: str, items: Sequence[Item], scans: Sequence[list[float]]) -> Outcome:
    delays = []
    changes = 0
    for item, times in zip(items, scans, strict=True):
        for change in item.changes:
            changes += 1
            index = bisect.bisect_left(times, change)
            if index < len(times):
                delays.append(times[index] - change)
    ordered = sorted(delays)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else 0.0
    return Outcome(
        strategy, sum(len(t) for t in scans), changes, len(delays), statistics.fmean(delays) if delays else 0.0, p95
    )


def simulate(count: int, days: float, seed: int) -> list[Outcome]:
    rng = random.Random(seed)
    items = make_items(count, days, rng)
    horizon = days * DAY
    return [
        measure("fixed daily", items, fixed_daily(items, horizon, random.Random(seed + 1))),
        measure("adaptive 1h-7d", items, adaptive(items, horizon)),
        measure("adaptive 1h-2d", items, adaptive(items, horizon, high=2 * DAY)),
        measure("sampled", items, sampled(items, horizon, random.Random(seed + 2))),
        measure("sampled, mixed groups", items, sampled(items, horizon, random.Random(seed + 3), mixed=True)),
    ]


def report(outcomes: Sequence[Outcome], count: int, days: float) -> str:
    lines = [
        f"{count} watched items, {days:g} days; mix: "
        + ", ".join(f"{v.share:.0%} {v.name}" for v in MIX)
        + f"; sampled: groups of {GROUP_SIZE}, {SAMPLE:.0%} sample daily, escalation above {THRESHOLD:.0%}",
        f"{'strategy':<22} {'scans':>9} {'vs daily':>9} {'changes':>8} {'undetected':>11} "
        f"{'mean delay':>11} {'p95 delay':>10}",
    ]
    daily = outcomes[0].scans or 1
    for o in outcomes:
        lines.append(
            f"{o.strategy:<22} {o.scans:>9} {o.scans / daily:>8.0%} {o.changes:>8} {o.changes - o.detected:>11} "
            f"{o.mean_delay_s / HOUR:>9.1f} h {o.p95_delay_s / HOUR:>8.1f} h"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    sys.stdout.write(report(simulate(args.items, args.days, args.seed), args.items, args.days))


if __name__ == "__main__":
    main()
