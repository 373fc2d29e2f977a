"""The fetch wait: short while records come, growing once they have stopped for a while, short again after."""

import pytest

from shared.fetch_wait import IdleFetchWait


def test_fetches_that_bring_records_keep_the_base_wait() -> None:
    wait = IdleFetchWait(base_ms=50, max_ms=400, patience_s=1.0)
    assert [wait.after_fetch(True, now) for now in (0.0, 5.0, 10.0)] == [50, 50, 50]


def test_a_lull_shorter_than_the_patience_costs_no_latency() -> None:
    wait = IdleFetchWait(base_ms=50, max_ms=400, patience_s=1.0)
    waits = [wait.after_fetch(False, now) for now in (0.0, 0.3, 0.6, 0.95)]
    assert waits == [50, 50, 50, 50]


def test_after_the_patience_each_empty_fetch_doubles_the_wait_up_to_the_maximum() -> None:
    wait = IdleFetchWait(base_ms=50, max_ms=400, patience_s=1.0)
    waits = [wait.after_fetch(False, now) for now in (0.0, 0.5, 1.0, 1.1, 1.3, 1.7, 2.1, 2.5)]
    assert waits == [50, 50, 100, 200, 400, 400, 400, 400]


def test_the_first_records_after_a_lull_bring_the_base_wait_back_and_restart_the_patience() -> None:
    wait = IdleFetchWait(base_ms=50, max_ms=400, patience_s=1.0)
    for now in (0.0, 1.0, 1.2, 1.4):
        wait.after_fetch(False, now)
    assert wait.current_ms == 400
    assert wait.after_fetch(True, 1.8) == 50
    assert [wait.after_fetch(False, now) for now in (1.9, 2.5, 2.9)] == [50, 50, 100]


def test_a_base_above_the_maximum_is_refused() -> None:
    with pytest.raises(ValueError, match="base_ms"):
        IdleFetchWait(base_ms=500, max_ms=200)
