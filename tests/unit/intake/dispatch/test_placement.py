"""Released batches go to the task partitions with the fewest batches in flight; equal loads share evenly."""

from collections import Counter

import pytest

from services.intake.dispatch.placement import place


def test_equal_loads_share_a_release_evenly_in_turn():
    assert place(8, {0, 1, 2, 3}, {}) == [0, 1, 2, 3, 0, 1, 2, 3]


def test_the_turns_start_where_asked():
    assert place(3, range(4), {}, start=2) == [2, 3, 0]
    assert place(2, range(4), {}, start=6) == [2, 3]


def test_batches_go_to_the_partitions_that_drained():
    # partitions 0 and 1 (a processor that kept up) are empty; 2 and 3 still hold four batches each
    placed = place(8, range(4), {2: 4, 3: 4})
    assert Counter(placed) == {0: 4, 1: 4}


def test_a_backlog_levels_the_partitions_then_shares_evenly():
    placed = place(10, range(3), {0: 3, 1: 1})
    assert Counter(placed) == {0: 2, 1: 4, 2: 4}  # they end at 5, 5 and 4


def test_partitions_the_loads_do_not_know_count_as_empty():
    assert place(2, range(3), {0: 1, 1: 1, 7: 9}) == [2, 0]


def test_nothing_to_place_gives_nothing():
    assert place(0, range(3), {}) == []


def test_a_topic_without_partitions_is_refused():
    with pytest.raises(ValueError, match="no partitions"):
        place(1, [], {})
