"""The rescan simulation's strategies on a small population (their relations, not exact numbers)."""

import random

from services.ops.simulate_rescans import DAY, adaptive, fixed_daily, make_items, measure, sampled, simulate


def test_fixed_daily_scans_every_item_once_a_day_and_finds_changes_within_a_day() -> None:
    items = make_items(200, 10, random.Random(1))
    outcome = measure("daily", items, fixed_daily(items, 10 * DAY, random.Random(2)))
    assert outcome.scans == 200 * 10
    assert 0 < outcome.mean_delay_s < DAY and outcome.p95_delay_s < DAY


def test_adaptive_and_sampled_scan_less_than_daily_when_most_items_are_stable() -> None:
    outcomes = {o.strategy: o for o in simulate(1000, 30, seed=3)}
    daily = outcomes["fixed daily"].scans
    assert outcomes["adaptive 1h-7d"].scans < daily
    assert outcomes["sampled"].scans < daily
    assert {o.changes for o in outcomes.values()} == {outcomes["fixed daily"].changes}


def test_adaptive_scans_a_volatile_item_more_often_than_a_stable_one() -> None:
    items = make_items(1000, 30, random.Random(4))
    scans = adaptive(items, 30 * DAY)
    by_class: dict[str, list[int]] = {}
    for item, times in zip(items, scans, strict=True):
        by_class.setdefault(item.volatility, []).append(len(times))
    assert min(by_class["hourly"]) > max(by_class["static"])


def test_a_sampled_group_that_never_changes_never_escalates() -> None:
    items = [i for i in make_items(1000, 10, random.Random(5)) if i.volatility == "static"][:100]
    scans = sampled(items, 10 * DAY, random.Random(6))
    assert sum(len(t) for t in scans) == 10 * 10  # a sample of 10 a day, nothing more
