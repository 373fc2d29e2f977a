"""The pure rescan rules: periodic and cron due times, the adaptive interval, samples and escalation."""

from datetime import UTC, datetime, timedelta

import pytest

from shared.rescan_rules import (
    ADAPTIVE_START_S,
    SampleTally,
    adaptive_interval,
    chunks,
    next_periodic_due,
    sample_decided,
    sample_size,
    should_escalate,
    starting_interval,
)

NOW = datetime(2030, 3, 4, 10, 17, tzinfo=UTC)
HOUR, DAY = 3600.0, 86_400.0


def test_a_periodic_item_is_next_due_one_interval_from_now() -> None:
    assert next_periodic_due(NOW, 2 * HOUR, None) == NOW + timedelta(hours=2)


def test_a_cron_item_is_next_due_at_the_next_matching_minute() -> None:
    assert next_periodic_due(NOW, None, "0 */6 * * *") == datetime(2030, 3, 4, 12, 0, tzinfo=UTC)
    assert next_periodic_due(NOW, None, "30 9 * * *") == datetime(2030, 3, 5, 9, 30, tzinfo=UTC)


def test_after_a_long_outage_the_next_due_counts_from_now_so_missed_rescans_collapse_into_one() -> None:
    later = NOW + timedelta(days=5)
    assert next_periodic_due(later, DAY, None) == later + timedelta(days=1)


@pytest.mark.parametrize(
    ("checks", "changes", "expected"),
    [(1, 1, 0.5 * DAY), (3, 2, 0.5 * DAY), (1, 0, 1.5 * DAY), (0, 0, DAY)],
)
def test_the_adaptive_interval_halves_on_a_change_grows_when_unchanged_and_waits_for_a_result(
    checks: int, changes: int, expected: float
) -> None:
    assert adaptive_interval(DAY, HOUR, 7 * DAY, new_checks=checks, new_changes=changes) == expected


def test_the_adaptive_interval_stays_within_its_bounds() -> None:
    assert adaptive_interval(1.5 * HOUR, HOUR, 2 * DAY, new_checks=1, new_changes=1) == HOUR
    assert adaptive_interval(1.9 * DAY, HOUR, 2 * DAY, new_checks=1, new_changes=0) == 2 * DAY


def test_an_adaptive_item_starts_at_a_day_clamped_into_its_bounds() -> None:
    assert starting_interval(HOUR, 7 * DAY) == ADAPTIVE_START_S == DAY
    assert starting_interval(2 * DAY, 7 * DAY) == 2 * DAY
    assert starting_interval(HOUR, 6 * HOUR) == 6 * HOUR
    assert adaptive_interval(None, HOUR, 7 * DAY, new_checks=1, new_changes=0) == 1.5 * DAY


@pytest.mark.parametrize(
    ("group", "fraction", "size"), [(100, 0.1, 10), (10, 0.2, 2), (5, 0.1, 1), (3, 1.0, 3), (0, 0.1, 0)]
)
def test_a_sample_is_the_fraction_rounded_up_and_never_empty(group: int, fraction: float, size: int) -> None:
    assert sample_size(group, fraction) == size


def test_a_sample_escalates_only_above_the_threshold() -> None:
    assert should_escalate(SampleTally(sampled=10, reported=10, changed=1), 0.05)
    assert not should_escalate(SampleTally(sampled=10, reported=10, changed=0), 0.05)
    assert not should_escalate(SampleTally(sampled=20, reported=20, changed=1), 0.05)  # exactly 5% is not above
    assert not should_escalate(SampleTally(sampled=10, reported=0, changed=0), 0.0)  # nothing known yet


def test_a_sample_is_decided_when_every_result_is_in_or_at_its_timeout() -> None:
    started = NOW
    waiting = SampleTally(sampled=4, reported=3, changed=0)
    assert not sample_decided(waiting, started, NOW + timedelta(minutes=5), timeout_s=HOUR)
    assert sample_decided(waiting, started, NOW + timedelta(hours=1), timeout_s=HOUR)
    assert sample_decided(SampleTally(4, 4, 0), started, NOW, timeout_s=HOUR)


def test_chunks_keep_order_and_cover_everything() -> None:
    assert [list(c) for c in chunks(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
