from uuid import uuid4

import pytest

from services.intake.logic import count_batches, split_into_batches
from sluice.contracts.events import Priority


def _split(items, batch_size, **overrides):
    job_id = uuid4()
    fields = dict(
        job_id=job_id,
        tenant="acme",
        kind="bench.noop",
        options={"rounds": 3},
        priority=Priority.BULK,
        items=items,
        batch_size=batch_size,
    )
    fields.update(overrides)
    return job_id, list(split_into_batches(**fields))


def test_item_indexes_run_from_zero_across_the_whole_job_not_per_batch():
    items = [f"item-{n}" for n in range(7)]
    _, batches = _split(items, 3)
    indexes = [item.index for batch in batches for item in batch.items]
    inputs = [item.input for batch in batches for item in batch.items]
    assert indexes == list(range(7))
    assert inputs == items


def test_the_last_batch_holds_the_remainder_and_the_others_are_full():
    _, batches = _split(list(range(7)), 3)
    assert [len(batch.items) for batch in batches] == [3, 3, 1]


def test_batch_index_counts_up_from_zero():
    _, batches = _split(list(range(10)), 2)
    assert [batch.batch_index for batch in batches] == [0, 1, 2, 3, 4]


def test_an_exact_multiple_of_the_batch_size_leaves_no_empty_trailing_batch():
    _, batches = _split(list(range(6)), 3)
    assert [len(batch.items) for batch in batches] == [3, 3]


def test_a_job_smaller_than_one_batch_is_a_single_batch():
    _, batches = _split(["only"], 50)
    assert len(batches) == 1
    assert batches[0].items[0].input == "only"


def test_every_batch_carries_the_jobs_identity_kind_options_and_priority():
    job_id, batches = _split(list(range(5)), 2)
    for batch in batches:
        assert (batch.job_id, batch.tenant, batch.kind) == (job_id, "acme", "bench.noop")
        assert batch.options == {"rounds": 3}
        assert batch.priority is Priority.BULK
    assert len({batch.event_id for batch in batches}) == len(batches)


def test_items_are_consumed_lazily_from_a_generator():
    produced = []

    def items():
        for n in range(5):
            produced.append(n)
            yield n

    batches = split_into_batches(
        job_id=uuid4(),
        tenant="t",
        kind="k",
        options={},
        priority=Priority.NORMAL,
        items=items(),
        batch_size=2,
    )
    first = next(batches)
    assert [item.input for item in first.items] == [0, 1]
    assert produced == [0, 1]


@pytest.mark.parametrize(
    ("total", "size", "expected"),
    [(1, 1, 1), (1, 50, 1), (50, 50, 1), (51, 50, 2), (100, 50, 2), (101, 50, 3), (0, 50, 0), (7, 3, 3)],
)
def test_count_batches_matches_the_batches_actually_produced(total, size, expected):
    assert count_batches(total, size) == expected
    _, batches = _split(list(range(total)), size)
    assert len(batches) == expected
