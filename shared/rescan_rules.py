"""Pure rules of rescans: when an item is next due, how the adaptive interval moves, what a sample decides.

No clock, pool or broker here: every function takes ``now`` and plain values.
"""

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from croniter import croniter

DAY_S = 86_400.0
ADAPTIVE_SHRINK = 0.5
"""An item that changed since its last rescan is rescanned twice as often (down to min_interval)..."""
ADAPTIVE_GROW = 1.5
"""...and one that did not, half again as rarely (up to max_interval)."""
ADAPTIVE_START_S = DAY_S
"""An adaptive item starts at one day (clamped into [min_interval, max_interval])."""

T = TypeVar("T")


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def next_periodic_due(now: datetime, interval_s: float | None, cron: str | None) -> datetime:
    """The next rescan of a periodic item: the next cron time after now, or now plus the interval.

    Counting from now (not from the missed due time) is what makes a restarted scheduler catch up once.
    """
    if cron:
        return croniter(cron, now).get_next(datetime)
    return now + timedelta(seconds=interval_s or DAY_S)


def starting_interval(min_interval_s: float, max_interval_s: float) -> float:
    return clamp(ADAPTIVE_START_S, min_interval_s, max_interval_s)


def adaptive_interval(
    current_s: float | None, min_interval_s: float, max_interval_s: float, new_checks: int, new_changes: int
) -> float:
    """The interval after this rescan, from what the item's results showed since the previous one.

    Changed (new_changes > 0): halve. Checked and unchanged: grow by half. Not checked yet (its last rescan's
    result is not in): keep. Always within [min_interval, max_interval].
    """
    current = current_s if current_s is not None else starting_interval(min_interval_s, max_interval_s)
    if new_changes > 0:
        current *= ADAPTIVE_SHRINK
    elif new_checks > 0:
        current *= ADAPTIVE_GROW
    return clamp(current, min_interval_s, max_interval_s)


def sample_size(group_size: int, fraction: float) -> int:
    """How many items of a group a sample rescans: the fraction rounded up, at least one (never more than all)."""
    if group_size <= 0:
        return 0
    return min(group_size, max(1, math.ceil(group_size * fraction - 1e-9)))


@dataclass(frozen=True)
class SampleTally:
    sampled: int
    reported: int
    """Sampled items whose rescan result is in."""
    changed: int


def sample_decided(tally: SampleTally, started_at: datetime, now: datetime, timeout_s: float) -> bool:
    """A sample is decided when every sampled result is in, or at its timeout with whatever is in."""
    return tally.reported >= tally.sampled or now >= started_at + timedelta(seconds=timeout_s)


def should_escalate(tally: SampleTally, threshold: float) -> bool:
    """Escalate to the whole group when the sample's change rate exceeds the threshold."""
    return tally.reported > 0 and tally.changed / tally.reported > threshold


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
